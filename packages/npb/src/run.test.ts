import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { npbBinDir } from "./bin-dir.js";
import { NpbError } from "./errors.js";
import { runNpb } from "./run.js";

// runNpb against a fake launcher script, so spawning, exit handling and the timeout kill are
// tested without MPI.
let dir: string;
const script = (name: string, body: string) => {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
};
// A killed grandchild may linger as a zombie until init reaps it: that counts as gone.
const alive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
};

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "npb-run-test-"));
  script("ep", "exit 0");
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<NpbError> {
  try {
    await p;
  } catch (e) {
    if (NpbError.isInstance(e)) return e;
    throw e;
  }
  throw new Error("expected a rejection");
}

describe("runNpb", () => {
  it("passes -n NP BIN CLASS and the env, and parses stdout", async () => {
    const fixture = new URL("./fixtures/nas-ep-S-3.4.3.txt", import.meta.url).pathname;
    const mpiexec = script(
      "mpiexec",
      `printf '%s\\n' "$*" > "${dir}/args"; echo "$EXTRA" > "${dir}/env"; cat "${fixture}"`,
    );
    const r = await runNpb({ kernel: "ep", cls: "S", np: 2, binDir: dir, mpiexec, env: { EXTRA: "yes" } });
    expect(r).toMatchObject({ kernel: "ep", class: "S", verified: true, seconds: 0.33 });
    expect(r.wallSeconds).toBeGreaterThan(0);
    expect(readFileSync(join(dir, "args"), "utf8").trim()).toBe(`-n 2 ${join(dir, "ep")} S`);
    expect(readFileSync(join(dir, "env"), "utf8").trim()).toBe("yes");
  });

  it("reports a non-zero exit with its stderr", async () => {
    const mpiexec = script("mpiexec", 'echo "ep: bad process count" >&2; exit 2');
    const e = await rejection(runNpb({ kernel: "ep", cls: "S", np: 3, binDir: dir, mpiexec }));
    expect(e.code).toBe("EXIT_FAILURE");
    expect(e.exitCode).toBe(2);
    expect(e.stderr).toContain("bad process count");
  });

  it("kills the whole launcher process group on timeout", async () => {
    // the fake launcher starts a grandchild, like mpiexec starting its proxy and ranks
    const mpiexec = script("mpiexec", `sleep 60 & echo $! > "${dir}/child"; wait`);
    const e = await rejection(
      runNpb({ kernel: "ep", cls: "S", np: 1, binDir: dir, mpiexec, timeoutMs: 300 }),
    );
    expect(e.code).toBe("TIMEOUT");
    const child = Number(readFileSync(join(dir, "child"), "utf8"));
    await new Promise((r) => setTimeout(r, 100));
    expect(alive(child)).toBe(false);
  });

  it("stops on abort", async () => {
    const mpiexec = script("mpiexec", "sleep 60");
    const ac = new AbortController();
    const p = runNpb({ kernel: "ep", cls: "S", np: 1, binDir: dir, mpiexec, signal: ac.signal });
    setTimeout(() => ac.abort(new Error("test abort")), 100);
    expect((await rejection(p)).code).toBe("ABORTED");
  });

  it("refuses a missing binary and bad arguments before spawning", async () => {
    const mpiexec = script("mpiexec", `touch "${dir}/spawned"`);
    const missing = await rejection(runNpb({ kernel: "cg", cls: "S", np: 1, binDir: dir, mpiexec }));
    expect(missing.code).toBe("BINARY_MISSING");
    expect(missing.path).toBe(join(dir, "cg"));
    for (const bad of [
      { kernel: "bt", cls: "S", np: 1 },
      { kernel: "ep", cls: "X", np: 1 },
      { kernel: "ep", cls: "S", np: 0 },
    ]) {
      // biome-ignore lint/suspicious/noExplicitAny: deliberately ill-typed input
      const e = await rejection(runNpb({ ...(bad as any), binDir: dir, mpiexec }));
      expect(e.code).toBe("INVALID_ARGUMENT");
    }
    expect(() => readFileSync(join(dir, "spawned"))).toThrow();
  });

  it("reports a launcher that cannot start", async () => {
    const e = await rejection(
      runNpb({ kernel: "ep", cls: "S", np: 1, binDir: dir, mpiexec: join(dir, "nope") }),
    );
    expect(e.code).toBe("SPAWN_FAILED");
  });
});

describe("npbBinDir", () => {
  it("defaults to <repo>/build/npb/bin and honours NPB_BIN_DIR", () => {
    expect(npbBinDir({})).toBe(new URL("../../../build/npb/bin", import.meta.url).pathname);
    expect(npbBinDir({ NPB_BIN_DIR: "/opt/npb" })).toBe("/opt/npb");
  });
});
