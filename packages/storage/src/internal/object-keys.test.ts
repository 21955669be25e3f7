import { describe, expect, it } from "vitest";
import { globalKey, normalizePrefix, parseGlobalKey, partKey, storeKey } from "./object-keys.js";

describe("object keys", () => {
  it("mirror the store's directory layout under a prefix", () => {
    const p = normalizePrefix("cluster-a");
    expect(p).toBe("cluster-a/");
    expect(storeKey(p)).toBe("cluster-a/STORE");
    expect(globalKey(p, 7)).toBe("cluster-a/epochs/0000000000000007.epoch");
    expect(partKey(p, "vm1", "e0000000000000007", "pages")).toBe("cluster-a/vms/vm1/e0000000000000007/pages");
  });

  it("normalise prefixes: none, a trailing slash, leading slashes", () => {
    expect(normalizePrefix(undefined)).toBe("");
    expect(normalizePrefix("")).toBe("");
    expect(normalizePrefix("a/b/")).toBe("a/b/");
    expect(normalizePrefix("/a")).toBe("a/");
    expect(storeKey("")).toBe("STORE");
  });

  it("parse epochs back from keys, and nothing else", () => {
    expect(parseGlobalKey("p/", "p/epochs/0000000000000042.epoch")).toBe(42);
    expect(parseGlobalKey("p/", "q/epochs/0000000000000042.epoch")).toBeUndefined();
    expect(parseGlobalKey("p/", "p/epochs/.tmp-1")).toBeUndefined();
    expect(parseGlobalKey("p/", "p/epochs/42.epoch")).toBeUndefined();
    expect(parseGlobalKey("", "epochs/0000000000000000.epoch")).toBe(0);
  });
});
