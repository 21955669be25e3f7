import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

const BIN = join(import.meta.dirname, "../dist/bin.js");

/** Every process below `root` (by /proc/<pid>/stat ppid). */
function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const [c, pp] of parent) {
      if (pp !== p) continue;
      out.push(c);
      walk(c);
    }
  };
  walk(root);
  return out;
}

/** /dev/shm files the processes hold open (how we tell our files from other runs' on a shared machine). */
function shmFiles(pids: readonly number[]): string[] {
  const files = new Set<string>();
  for (const pid of pids) {
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        // Files already unlinked ("(deleted)") cannot be left behind; only named ones count.
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (target.startsWith("/dev/shm/") && !target.endsWith(" (deleted)")) files.add(target);
      }
    } catch {
      // exited meanwhile
    }
  }
  return [...files];
}

const alive = (pid: number): boolean => existsSync(`/proc/${pid}`);

describe("vpc eval interrupted with Ctrl-C (real VM, TCG)", () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("stops the running cell, removes its VM and /dev/shm files, exits 130, and the cell reruns on resume", async () => {
    dir = await mkdtemp(join(tmpdir(), "vpc-eval-int-"));
    const out = join(dir, "results");
    const child = spawn(process.execPath, [BIN, "eval", "solo", "--quick", "--out", out], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    try {
      // Wait until the first cell's VM runs the kernel: QEMU, the agent and the dirty log exist.
      await new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (d: Buffer) => {
          stdout += d.toString();
          if (/running CG\.S/.test(stdout)) resolve();
        });
        child.on("exit", () => reject(new Error(`vpc eval exited early:\n${stdout}\n${stderr}`)));
      });
      const pids = descendants(child.pid!);
      const files = shmFiles([child.pid!, ...pids]);
      expect(pids.length).toBeGreaterThan(0);
      expect(files.length).toBeGreaterThan(0);
      child.kill("SIGINT");
      const code = await Promise.race([
        exited,
        new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 60_000)),
      ]);
      expect(code, `${stdout}\n${stderr}`).toBe(130);
      expect(stdout).toMatch(/interrupted/);
      expect(pids.filter(alive)).toEqual([]);
      expect(files.filter((f) => existsSync(f))).toEqual([]);
      // The interrupted cell has no status (a resume runs it again) and the run is not ended.
      const cells = await readdir(join(out, "cells"));
      expect(cells.filter((f) => f.endsWith(".status.json"))).toEqual([]);
      expect(JSON.parse(await readFile(join(out, "run.json"), "utf8")).endedAt).toBeNull();
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
    }
  }, 180_000);
});
