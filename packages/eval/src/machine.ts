/** Facts of the machine and checkout a run records in run.json. */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { cpus, hostname, release } from "node:os";
import { promisify } from "node:util";
import type { MachineFacts } from "./format.js";

const run = promisify(execFile);

async function firstLine(cmd: string, args: string[]): Promise<string | null> {
  try {
    const { stdout } = await run(cmd, args, { timeout: 10_000 });
    return stdout.split("\n")[0]?.trim() || null;
  } catch {
    return null;
  }
}

export async function machineFacts(qemuBinary = "qemu-system-x86_64"): Promise<MachineFacts> {
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? cpus()[0]?.model ?? "unknown";
  const qemu = await firstLine(qemuBinary, ["--version"]);
  return {
    cpuModel: model,
    cores: cpus().length,
    kernel: release(),
    qemuVersion: qemu ? (/version\s+(\S+)/.exec(qemu)?.[1] ?? qemu) : null,
    // The executors boot guests with the controller's default accelerator, TCG (FIELD-NOTES §1).
    accelerator: "tcg",
    hostname: hostname(),
    node: process.versions.node,
  };
}

export async function gitFacts(
  cwd = process.cwd(),
): Promise<{ commit: string | null; dirty: boolean | null }> {
  const commit = await firstLine("git", ["-C", cwd, "rev-parse", "HEAD"]);
  if (commit === null) return { commit: null, dirty: null };
  try {
    const { stdout } = await run("git", ["-C", cwd, "status", "--porcelain", "--untracked-files=no"], {
      timeout: 10_000,
    });
    return { commit, dirty: stdout.trim().length > 0 };
  } catch {
    return { commit, dirty: null };
  }
}
