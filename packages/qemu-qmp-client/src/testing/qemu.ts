import { type ChildProcess, spawn } from "node:child_process";
import { access, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { QmpAddress } from "../errors.js";

export interface QemuForQmpOptions {
  /** Default "qemu-system-x86_64". */
  readonly binary?: string;
  /** Appended to the minimal command line (q35, no devices, no display, 64 MiB, stopped). */
  readonly extraArgs?: readonly string[];
  /** How long to wait for the QMP socket to appear. Default 20 000 ms. */
  readonly startTimeoutMs?: number;
}

export interface QemuForQmp {
  /** Where its QMP socket listens. */
  readonly qmp: { path: string } & QmpAddress;
  /** Its private 0700 directory (removed by dispose()). */
  readonly dir: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** What QEMU wrote to stderr so far. */
  stderr(): string;
  /** How QEMU ended, or undefined while it runs: for error messages when a test fails. */
  exitStatus(): { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** SIGKILLs QEMU if it still runs, waits for it, and removes its directory. */
  dispose(): Promise<void>;
}

/**
 * Starts a QEMU that needs no guest image: `-S` keeps the vCPUs stopped, which is all QMP needs.
 * Always TCG, never KVM, so it runs anywhere. For integration tests and benchmarks.
 * It returns once a probe connection got the greeting; QEMU may then refuse connections for a
 * moment while it re-arms its listener, so connect with `connectRetryMs`.
 */
export async function startQemuForQmp(options: QemuForQmpOptions = {}): Promise<QemuForQmp> {
  const dir = await mkdtemp(join(tmpdir(), "qmp-qemu-"));
  const path = join(dir, "qmp.sock");
  const args = [
    ...["-machine", "q35,accel=tcg", "-nodefaults", "-display", "none", "-m", "64", "-S"],
    ...["-qmp", `unix:${path},server=on,wait=off`],
    ...(options.extraArgs ?? []),
  ];
  const child = spawn(options.binary ?? "qemu-system-x86_64", args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (text: string) => {
    stderr += text;
  });
  let running = true;
  let status: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("error", (err) => {
      stderr += String(err);
      running = false;
      resolve({ code: null, signal: null });
    });
    child.once("exit", (code, signal) => {
      running = false;
      status = { code, signal };
      resolve(status);
    });
  });
  const dispose = async (): Promise<void> => {
    if (running) child.kill("SIGKILL");
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + (options.startTimeoutMs ?? 20_000);
  // QEMU creates the socket during start-up; there is no event to wait on, so poll the path.
  for (;;) {
    if (
      await access(path).then(
        () => true,
        () => false,
      )
    )
      break;
    if (!running || Date.now() > deadline) {
      await dispose();
      throw new Error(
        `QEMU did not open its QMP socket (${running ? "timeout" : "exited"}): ${stderr.trim()}`,
      );
    }
    await sleep(20);
  }
  return {
    qmp: { path },
    dir,
    pid: child.pid!,
    child,
    exited,
    stderr: () => stderr,
    exitStatus: () => status,
    dispose,
  };
}
