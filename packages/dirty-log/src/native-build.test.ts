import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DirtyLogError } from "./errors.js";
import { ensureNativeBuilt } from "./native-build.js";

const NATIVE = join(dirname(fileURLToPath(import.meta.url)), "..", "native");

// A C compile is bounded work but slow on a loaded 2-core machine (over 5 s seen): explicit budget.
const COMPILE_BUDGET_MS = 120_000;

describe("ensureNativeBuilt", () => {
  let out: string;
  beforeEach(() => {
    out = mkdtempSync(join(tmpdir(), "vpc-dl-native-"));
  });
  afterEach(() => rmSync(out, { recursive: true, force: true }));

  it("compiles a missing target from native/ and leaves no scratch directory", {
    timeout: COMPILE_BUDGET_MS,
  }, () => {
    const built = ensureNativeBuilt(NATIVE, out, "vpc-dl-harness");
    expect(built).toBe(join(out, "vpc-dl-harness"));
    expect(statSync(built).mode & 0o111).not.toBe(0);
    expect(readdirSync(out)).toEqual(["vpc-dl-harness"]);
  });

  it("names the missing compiler instead of failing inside make", { timeout: COMPILE_BUDGET_MS }, () => {
    let caught: unknown;
    try {
      ensureNativeBuilt(NATIVE, out, "vpc-dl-harness", "vpc-no-such-cc");
    } catch (e) {
      caught = e;
    }
    expect(DirtyLogError.isInstance(caught)).toBe(true);
    expect((caught as DirtyLogError).code).toBe("BUILD");
    expect((caught as Error).message).toMatch(/no C compiler \(`vpc-no-such-cc` not found\)/);
    expect(existsSync(join(out, "vpc-dl-harness"))).toBe(false);
  });

  it("returns an existing target without building", { timeout: COMPILE_BUDGET_MS }, () => {
    const first = ensureNativeBuilt(NATIVE, out, "vpc-dl-harness");
    const mtime = statSync(first).mtimeMs;
    expect(ensureNativeBuilt(NATIVE, out, "vpc-dl-harness", "vpc-no-such-cc")).toBe(first);
    expect(statSync(first).mtimeMs).toBe(mtime);
  });
});
