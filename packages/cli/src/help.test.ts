import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { EXIT_OK, EXIT_USAGE, main } from "./cli.js";
import { STORE_USAGE } from "./store-commands.js";

async function vpc(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { stdout: (t) => out.push(t), stderr: (t) => err.push(t) });
  return { code, out: out.join(""), err: err.join("") };
}

describe("vpc --version, vpc help CMD, unknown options", () => {
  it("prints the package's version", async () => {
    const { version } = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8"));
    for (const flag of ["--version", "-V"])
      expect(await vpc(flag)).toEqual({ code: EXIT_OK, out: `vpc ${version}\n`, err: "" });
  });

  it("help CMD prints that command's help", async () => {
    expect(await vpc("help", "store")).toEqual({ code: EXIT_OK, out: `${STORE_USAGE}\n`, err: "" });
    expect((await vpc("help", "demo")).out).toContain("Usage: vpc demo");
  });

  it("names an unknown option in vpc's words", async () => {
    const top = await vpc("--frobnicate");
    expect(top.code).toBe(EXIT_USAGE);
    expect(top.err).toMatch(/^vpc: unknown option --frobnicate\n/);
    const demo = await vpc("demo", "--frobnicate");
    expect(demo.code).toBe(EXIT_USAGE);
    expect(demo.err).toMatch(/^vpc demo: unknown option --frobnicate\n/);
    expect(demo.err).not.toContain("positional argument");
  });

  it("every command names an unknown option the same way, exit 2", async () => {
    for (const command of [
      ["testbed", "status"],
      ["cluster", "up"],
      ["doctor"],
      ["checkpoint"],
      ["restore"],
      ["store", "info", "d"],
      ["eval", "solo"],
      ["report", "d"],
    ]) {
      const r = await vpc(...command, "--frobnicate");
      expect(r.code, command.join(" ")).toBe(EXIT_USAGE);
      expect(r.err, command.join(" ")).toMatch(
        new RegExp(`^vpc ${command[0]}: unknown option --frobnicate\n`),
      );
    }
    const p = await vpc("predictor", "strategies", "--frobnicate");
    expect(p.code).toBe(EXIT_USAGE);
    expect(p.err).toMatch(/^error: unknown option --frobnicate\n/);
  });
});
