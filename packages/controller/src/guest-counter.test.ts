import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { findCounterInRam, parseCounterLine } from "./guest-counter.js";

function record(nonce: bigint, value: bigint): Buffer {
  const b = Buffer.alloc(24);
  b.write("VPCCNTR1", 0, "ascii");
  b.writeBigUInt64LE(nonce, 8);
  b.writeBigUInt64LE(value, 16);
  return b;
}

describe("vpc-counter helpers", () => {
  it("parses the published line", () => {
    expect(parseCounterLine("42 00000000deadbeef\n")).toEqual({ value: 42n, nonce: 0xdeadbeefn });
    expect(() => parseCounterLine("42")).toThrow();
  });

  it("finds the record with the right nonce, also across chunk borders", async () => {
    const dir = await mkdtemp(join(tmpdir(), "vpc-counter-test-"));
    try {
      const size = 40 * 1024 * 1024;
      for (const at of [0, 16 * 1024 * 1024 - 10, 16 * 1024 * 1024 - 24, size - 24]) {
        const ram = Buffer.alloc(size);
        record(7n, 999n).copy(ram, 4096); // a decoy with another nonce
        record(0x1234n, 5555n).copy(ram, at);
        const file = join(dir, "ram");
        await writeFile(file, ram);
        expect(await findCounterInRam(file, 0x1234n)).toBe(5555n);
        expect(await findCounterInRam(file, 0x9999n)).toBeUndefined();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
