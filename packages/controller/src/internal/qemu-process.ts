/** Spawning QEMU and following its exit; keeps the last lines of its output for error messages. */
import { type ChildProcess, spawn } from "node:child_process";
import { trackPid, untrackPid } from "./reaper.js";

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

const TAIL_BYTES = 4096;

export class QemuProcess {
  readonly pid: number;
  /** Resolves when QEMU has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;
  exitInfo: ExitInfo | undefined;
  private output = "";

  private constructor(private readonly child: ChildProcess) {
    if (child.pid === undefined) throw new Error("spawn returned no pid");
    this.pid = child.pid;
    trackPid(this.pid);
    const append = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString("utf8")).slice(-TAIL_BYTES);
    };
    child.stdout?.on("data", append);
    child.stderr?.on("data", append);
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        untrackPid(this.pid);
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
    });
  }

  static async spawn(binary: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<QemuProcess> {
    const child = spawn(binary, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", reject);
    });
    return new QemuProcess(child);
  }

  get alive(): boolean {
    return this.exitInfo === undefined;
  }

  /** The last few KB QEMU wrote to stdout/stderr. */
  outputTail(): string {
    return this.output.trim();
  }

  signal(sig: NodeJS.Signals): void {
    if (this.alive) this.child.kill(sig);
  }

  /** Sends `sig`, waits up to `graceMs`, then SIGKILLs; resolves once QEMU is gone. */
  async terminate(sig: NodeJS.Signals = "SIGTERM", graceMs = 5000): Promise<ExitInfo> {
    if (!this.alive) return this.exited;
    this.signal(sig);
    if (sig === "SIGKILL") return this.exited;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((r) => {
      timer = setTimeout(() => r("timeout"), graceMs);
    });
    const first = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (first === "timeout") this.signal("SIGKILL");
    return this.exited;
  }
}
