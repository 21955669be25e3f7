import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ClusterError } from "./errors.js";
import { FINGERPRINT, HostKeyError, hostKeyFingerprint, verifyHostKey } from "./host-key.js";

describe("host keys", () => {
  it("fingerprints a key blob as OpenSSH does", () => {
    const blob = Buffer.from(
      "AAAAC3NzaC1lZDI1NTE5AAAAIOmN1qCc3FOKkVbTKjfbVg7T7U1Ndh0y1Xx2qN0bWwrs",
      "base64",
    );
    const fp = hostKeyFingerprint(blob);
    expect(fp).toMatch(FINGERPRINT);
    expect(fp).toBe(`SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`);
  });

  it("checks the configured key, then the pin, else trusts on first use", () => {
    const a = `SHA256:${"a".repeat(43)}`;
    const b = `SHA256:${"b".repeat(43)}`;
    expect(verifyHostKey(a, undefined, undefined)).toEqual({ ok: true, pin: a, firstUse: true });
    expect(verifyHostKey(a, undefined, a)).toEqual({ ok: true, pin: a, firstUse: false });
    expect(verifyHostKey(b, undefined, a)).toEqual({ ok: false, expected: a, seen: b, source: "pinned" });
    expect(verifyHostKey(a, a, b)).toEqual({ ok: true, pin: a, firstUse: false });
    const v = verifyHostKey(b, a, undefined);
    expect(v).toEqual({ ok: false, expected: a, seen: b, source: "config" });
    if (v.ok) throw new Error("unreachable");
    const e = new HostKeyError("r1", "10.0.0.5", v);
    expect(e.code).toBe("HOST_KEY");
    expect(ClusterError.isInstance(e)).toBe(true);
    expect([e.expected, e.seen, e.source]).toEqual([a, b, "config"]);
    expect(e.message).toContain("fix hostKey");
  });
});
