/** One reusable SSH connection to a guest's dropbear, with retries while the guest comes up. */
import { Client, type ClientChannel } from "ssh2";
import { SshError } from "../errors.js";
import type { Logger } from "../logger.js";

export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
  /** Exit status, or null if the command was ended by a signal. */
  readonly exitCode: number | null;
  readonly signal: string | null;
}

export interface SshTarget {
  readonly vmId: string;
  readonly port: number;
  readonly privateKey: Buffer;
  readonly logger: Logger;
}

const RETRY_DELAY_MS = 250;

export class GuestSsh {
  private client: Client | undefined;
  private connecting: Promise<Client> | undefined;
  private closed = false;

  constructor(private readonly target: SshTarget) {}

  /** Connects (retrying refused or reset connections) until `deadlineMs` (a Date.now() time). */
  async connect(deadlineMs: number): Promise<void> {
    await this.ensure(deadlineMs);
  }

  async exec(
    command: string,
    options: { timeoutMs?: number; connectTimeoutMs?: number } = {},
  ): Promise<ExecResult> {
    const client = await this.ensure(Date.now() + (options.connectTimeoutMs ?? 30_000));
    const channel = await new Promise<ClientChannel>((resolve, reject) => {
      client.exec(command, (err, ch) =>
        err ? reject(new SshError(this.target.vmId, "exec", err.message, err)) : resolve(ch),
      );
    });
    return new Promise<ExecResult>((resolve, reject) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let exitCode: number | null = null;
      let signal: string | null = null;
      const timer =
        options.timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              channel.close();
              reject(
                new SshError(this.target.vmId, "exec", `timed out after ${options.timeoutMs} ms: ${command}`),
              );
            }, options.timeoutMs);
      channel.on("data", (d: Buffer) => out.push(d));
      channel.stderr.on("data", (d: Buffer) => err.push(d));
      channel.on("exit", (code: number | null, sig?: string) => {
        exitCode = code;
        signal = sig ?? null;
      });
      channel.on("close", () => {
        clearTimeout(timer);
        resolve({
          stdout: Buffer.concat(out).toString("utf8"),
          stderr: Buffer.concat(err).toString("utf8"),
          exitCode,
          signal,
        });
      });
    });
  }

  close(): void {
    this.closed = true;
    this.client?.end();
    this.client = undefined;
  }

  private async ensure(deadlineMs: number): Promise<Client> {
    if (this.closed) throw new SshError(this.target.vmId, "connect", "connection closed");
    if (this.client) return this.client;
    this.connecting ??= this.connectLoop(deadlineMs).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connectLoop(deadlineMs: number): Promise<Client> {
    let attempt = 0;
    let last: unknown;
    while (!this.closed) {
      attempt++;
      const remaining = deadlineMs - Date.now();
      if (remaining <= 0) break;
      try {
        const client = await this.connectOnce(Math.max(1000, remaining));
        this.target.logger.log("debug", "ssh.connected", { port: this.target.port, attempt });
        return client;
      } catch (e) {
        last = e;
        await new Promise((r) => setTimeout(r, RETRY_DELAY_MS));
      }
    }
    const message = this.closed
      ? "connection closed"
      : `could not connect to 127.0.0.1:${this.target.port} after ${attempt} attempts`;
    throw new SshError(this.target.vmId, "connect", message, last);
  }

  private connectOnce(timeoutMs: number): Promise<Client> {
    return new Promise((resolve, reject) => {
      const client = new Client();
      let settled = false;
      client.once("ready", () => {
        settled = true;
        this.client = client;
        resolve(client);
      });
      client.on("error", (e) => {
        if (!settled) {
          settled = true;
          client.end();
          reject(e);
        } else {
          this.target.logger.log("warn", "ssh.error", { error: e });
        }
      });
      client.on("close", () => {
        if (this.client === client) this.client = undefined;
        if (!settled) {
          settled = true;
          reject(new Error("connection closed during handshake"));
        }
      });
      client.connect({
        host: "127.0.0.1",
        port: this.target.port,
        username: "root",
        privateKey: this.target.privateKey,
        readyTimeout: timeoutMs,
        // Guests share one throwaway host key made at image build time; there is nothing to pin.
        hostVerifier: () => true,
      });
    });
  }
}
