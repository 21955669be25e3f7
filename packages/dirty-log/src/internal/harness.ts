import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface, type Interface } from "node:readline";
import { DirtyLogClient } from "../client.js";
import { type AgentDir, agentEnv, createAgentDir, harnessPath } from "../paths.js";

/**
 * The QEMU stand-in (native/harness.c) with the agent preloaded, plus a connected client.
 * For tests and the benchmark only. `close()` ends the process and removes its directory.
 */
export class Harness {
  readonly dir: AgentDir;
  readonly ramPath: string;
  readonly pages: number;
  readonly child: ChildProcessWithoutNullStreams;
  readonly client: DirtyLogClient;
  readonly #lines: Interface;
  #waiters: ((line: string) => void)[] = [];
  stderr = "";

  private constructor(
    dir: AgentDir,
    ramPath: string,
    pages: number,
    child: ChildProcessWithoutNullStreams,
    client: DirtyLogClient,
    lines: Interface,
  ) {
    this.dir = dir;
    this.ramPath = ramPath;
    this.pages = pages;
    this.child = child;
    this.client = client;
    this.#lines = lines;
  }

  static async start(pages: number, env: Record<string, string> = {}): Promise<Harness> {
    const dir = await createAgentDir();
    const ramPath = join(dir.dir, "ram");
    const exe = harnessPath();
    const child = spawn(exe, [ramPath, String(pages)], {
      env: { ...process.env, ...agentEnv(dir.socketPath, { exe }), ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    // A command written as the process dies must not become an uncaught EPIPE.
    child.stdin.on("error", () => undefined);
    const lines = createInterface({ input: child.stdout });
    const waiters: ((line: string) => void)[] = [];
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    lines.on("line", (l) => waiters.shift()?.(l));
    try {
      const ready = await new Promise<string>((resolve, reject) => {
        waiters.push(resolve);
        child.once("exit", (code) => reject(new Error(`harness exited (${code}): ${stderr}`)));
        child.once("error", reject);
      });
      if (!ready.startsWith("ready")) throw new Error(`harness: ${ready}`);
      const client = await DirtyLogClient.connect(dir.socketPath);
      const h = new Harness(dir, ramPath, pages, child, client, lines);
      h.#waiters = waiters;
      child.stderr.on("data", (d: Buffer) => {
        h.stderr += d.toString();
      });
      return h;
    } catch (e) {
      child.kill("SIGKILL");
      await dir.remove();
      throw e;
    }
  }

  /** Sends one command line; resolves with the reply's words after "ok". */
  async cmd(line: string): Promise<string[]> {
    const reply = await new Promise<string>((resolve, reject) => {
      if (this.child.exitCode !== null) return reject(new Error(`harness exited: ${this.stderr}`));
      this.#waiters.push(resolve);
      this.child.stdin.write(`${line}\n`);
    });
    const [status, ...rest] = reply.split(" ");
    if (status !== "ok") throw new Error(`harness: ${line.slice(0, 60)}: ${reply}`);
    return rest;
  }

  async write(gen: number, pages: Iterable<number>): Promise<void> {
    const list = [...pages];
    for (let i = 0; i < list.length; i += 4096)
      await this.cmd(`write ${gen} ${list.slice(i, i + 4096).join(",")}`);
  }

  async read(pages: Iterable<number>): Promise<void> {
    const list = [...pages];
    for (let i = 0; i < list.length; i += 4096) await this.cmd(`read ${list.slice(i, i + 4096).join(",")}`);
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => undefined);
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((r) => this.child.once("exit", r));
      this.child.stdin.end("quit\n");
      const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }
    this.#lines.close();
    await this.dir.remove();
  }
}
