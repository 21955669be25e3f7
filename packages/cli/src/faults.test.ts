import { describe, expect, it } from "vitest";
import { EXIT_OK, EXIT_USAGE, main } from "./cli.js";
import { FAULTS_USAGE, parseFaultsArgs } from "./faults.js";

async function vpc(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { stdout: (t) => out.push(t), stderr: (t) => err.push(t) });
  return { code, out: out.join(""), err: err.join("") };
}

describe("vpc faults store arguments", () => {
  it("parses the options, a random seed when none is given", () => {
    expect(
      parseFaultsArgs(["store", "--store", "d", "--trials", "9", "--seed", "12", "--json"], () => 5),
    ).toEqual({
      storeDir: "d",
      trials: 9,
      seed: 12,
      scratchDir: undefined,
      json: true,
    });
    expect(parseFaultsArgs(["store", "--store", "d", "--scratch", "/x"], () => 77)).toMatchObject({
      seed: 77,
      trials: undefined,
      scratchDir: "/x",
    });
  });

  it("names what is wrong, with the usage, exit 2", async () => {
    for (const [args, message] of [
      [[], "missing campaign (store)"],
      [["kill"], 'unknown campaign "kill"'],
      [["store"], "--store DIR is required"],
      [["store", "--store", "d", "--trials", "0"], "--trials must be an integer >= 1, got 0"],
      [["store", "--store", "d", "--seed", "1.5"], "--seed must be an integer >= 0, got 1.5"],
      [["store", "--store", "d", "--seed", "4294967296"], "--seed must be below 2^32"],
      [["store", "--store", "d", "extra"], "unexpected argument: extra"],
      [["store", "--frobnicate"], "unknown option --frobnicate"],
    ] as const) {
      const r = await vpc("faults", ...args);
      expect(r.code, args.join(" ")).toBe(EXIT_USAGE);
      expect(r.err, args.join(" ")).toMatch(
        new RegExp(`^vpc faults: ${message.replace(/[()^$*+?.[\]]/g, "\\$&")}`),
      );
      expect(r.err).toContain(FAULTS_USAGE);
    }
  });

  it("prints its help", async () => {
    expect(await vpc("faults", "--help")).toEqual({ code: EXIT_OK, out: `${FAULTS_USAGE}\n`, err: "" });
    expect(await vpc("help", "faults")).toEqual({ code: EXIT_OK, out: `${FAULTS_USAGE}\n`, err: "" });
    expect((await vpc("--help")).out).toContain("faults store --store DIR");
  });
});
