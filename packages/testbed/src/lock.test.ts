import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { acquireTestbedLock, argsName, lockIsStale, lockPath, parseLockHolder, processArgs } from "./lock.js";

describe("lock content and staleness (pure)", () => {
  it("parses a holder and rejects torn or foreign content", () => {
    expect(parseLockHolder('{"pid":12,"command":"up","since":"t"}')).toEqual({
      pid: 12,
      command: "up",
      since: "t",
    });
    expect(parseLockHolder("")).toBeUndefined();
    expect(parseLockHolder('{"pid":"12","command":"up","since":"t"}')).toBeUndefined();
    expect(parseLockHolder('{"pid":0,"command":"up","since":"t"}')).toBeUndefined();
  });

  it("is stale when unreadable, when the holder is gone, or when its PID is now another program", () => {
    const h = { pid: 12, command: "up", since: "t" };
    expect(lockIsStale(undefined, ["node", "bin.js", "testbed", "up"])).toBe(true);
    expect(lockIsStale(h, undefined)).toBe(true);
    expect(lockIsStale(h, ["sleep", "100"])).toBe(true);
    expect(lockIsStale(h, ["node", "/x/bin.js", "testbed", "up"])).toBe(false);
  });

  it("names a run directory only as a whole argument", () => {
    expect(argsName(["node", "d", "--run-dir", "/run/vpc-testbed/demo"], "/run/vpc-testbed/demo")).toBe(true);
    expect(argsName(["node", "d", "--run-dir", "/run/vpc-testbed/demo2"], "/run/vpc-testbed/demo")).toBe(
      false,
    );
    expect(argsName(undefined, "/x")).toBe(false);
  });
});

describe("acquireTestbedLock", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const root = (): string => {
    const d = mkdtempSync(join(tmpdir(), "vpc-lock-"));
    dirs.push(d);
    return d;
  };

  it("refuses a second holder while a live vpc testbed process holds it, and releases", async () => {
    const r = root();
    // This test process's own args contain "vitest", not "testbed": hold it from a child whose do.
    const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)", "testbed", "up"], {
      stdio: "ignore",
    });
    try {
      await new Promise((ok) => child.once("spawn", ok));
      writeFileSync(lockPath(r, "demo"), JSON.stringify({ pid: child.pid, command: "up", since: "then" }));
      await expect(acquireTestbedLock(r, "demo", "down")).rejects.toMatchObject({
        code: "TESTBED_STATE",
        message: expect.stringMatching(/another "vpc testbed up" \(pid \d+, since then\)/),
      });
    } finally {
      child.kill("SIGKILL");
    }
    await new Promise((ok) => child.once("exit", ok));
    // Its holder is gone now: the lock is taken over.
    const release = await acquireTestbedLock(r, "demo", "down");
    expect(parseLockHolder(readFileSync(lockPath(r, "demo"), "utf8"))).toMatchObject({
      pid: process.pid,
      command: "down",
    });
    release();
    expect(existsSync(lockPath(r, "demo"))).toBe(false);
    expect(existsSync(`${lockPath(r, "demo")}.${process.pid}.tmp`)).toBe(false);
  });

  it("takes over a torn lock file, and a release leaves someone else's lock alone", async () => {
    const r = root();
    writeFileSync(lockPath(r, "ci"), "");
    const release = await acquireTestbedLock(r, "ci", "up");
    writeFileSync(lockPath(r, "ci"), JSON.stringify({ pid: 1, command: "up", since: "x" }));
    release();
    expect(existsSync(lockPath(r, "ci"))).toBe(true);
  });

  it("reads a process's arguments", () => {
    expect(processArgs(process.pid)?.[0]).toBe(process.execPath);
    expect(processArgs(2 ** 22 + 1)).toBeUndefined();
  });
});
