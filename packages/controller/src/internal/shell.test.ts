import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { shellQuote } from "./shell.js";

describe("shellQuote", () => {
  it("gives sh back every string unchanged as one argument", () => {
    for (const s of ["", "plain", "two words", "it's", "'", '$HOME `id` \\ " ; |', "a\nb"]) {
      expect(execFileSync("sh", ["-c", `printf %s ${shellQuote(s)}`], { encoding: "utf8" })).toBe(s);
    }
  });
});
