import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { resultBlocks } from "./workload.js";

const fixture = (name: string) =>
  readFile(join(import.meta.dirname, "../../../npb/src/fixtures", name), "utf8");

describe("resultBlocks", () => {
  it("parses every complete result block and leaves out one still being printed", async () => {
    const one = await fixture("mg-S-np2.txt");
    expect(resultBlocks(one).map((b) => [b.kernel, b.verified])).toEqual([["mg", true]]);
    const two = `${one}\n${one}`;
    expect(resultBlocks(two)).toHaveLength(2);
    // Cut the second copy inside its Verification line: only the first block counts.
    const cut = two.slice(0, two.lastIndexOf("SUCCESSFUL") + 4);
    expect(resultBlocks(cut)).toHaveLength(1);
    expect(resultBlocks("no result here")).toEqual([]);
  });

  it("keeps an unsuccessful block, so the caller sees it was not verified", async () => {
    const wrong = await fixture("is-W-np4-wrong-reference.txt");
    expect(resultBlocks(wrong).map((b) => b.verified)).toEqual([false]);
  });
});
