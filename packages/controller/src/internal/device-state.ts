/**
 * Saving QEMU's device state (RAM left out by x-ignore-shared) to a file through `migrate`.
 *
 * Two transports:
 *  - "exec": QEMU runs `sh -c "cat > FILE"` and writes into its stdin;
 *  - "unix": we listen on a unix socket, QEMU connects to it, we stream it into the file.
 * (QEMU's `fd:` transport with a file passed by `getfd` would save a process spawn, but Node
 * cannot send file descriptors with SCM_RIGHTS over a net.Socket.)
 */
import { createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { pipeline } from "node:stream/promises";
import type { QmpClient } from "qemu-qmp-client";

export type DeviceStateTransport = "exec" | "unix";

export interface SaveOptions {
  readonly transport: DeviceStateTransport;
  /** Socket path for the "unix" transport (must not exist). */
  readonly socketPath: string;
  readonly timeoutMs: number;
}

export async function saveDeviceStateTo(qmp: QmpClient, path: string, options: SaveOptions): Promise<void> {
  if (options.transport === "exec") {
    if (path.includes("'")) throw new Error("path must not contain a single quote");
    await qmp.migrate(`exec:cat > '${path}'`);
    await qmp.waitForMigration({ timeoutMs: options.timeoutMs });
    return;
  }
  const { server, written } = await listenOnce(options.socketPath, path);
  try {
    await qmp.migrate(`unix:${options.socketPath}`);
    await Promise.all([qmp.waitForMigration({ timeoutMs: options.timeoutMs }), written]);
  } finally {
    server.close();
    await rm(options.socketPath, { force: true });
  }
}

/** Accepts one connection on `socketPath` and writes everything it sends to `file`. */
async function listenOnce(
  socketPath: string,
  file: string,
): Promise<{ server: Server; written: Promise<void> }> {
  let onConnection!: (socket: Socket) => void;
  const connected = new Promise<Socket>((resolve) => {
    onConnection = resolve;
  });
  const server = createServer({ allowHalfOpen: false }, (socket) => onConnection(socket));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve());
  });
  const written = connected.then((socket) => pipeline(socket, createWriteStream(file)));
  // If migrate fails before QEMU connects, nobody waits on `written`; avoid an unhandled rejection.
  written.catch(() => undefined);
  return { server, written };
}

/**
 * A unix socket kept listening for the life of a VM, into which QEMU's `migrate` writes the device
 * state; the stream is kept in memory. Made before the first pause, so a checkpoint's pause pays
 * no socket set-up, no file and no clean-up (FIELD-NOTES §2: the per-checkpoint socket, the file
 * and polled completion tripled the device-state step). Completion comes from QMP's MIGRATION
 * events (the `events` capability must be on; `waitForMigration` falls back to polling otherwise).
 */
export class DeviceStateSink {
  readonly socketPath: string;
  readonly #server: Server;
  #onConnection: ((socket: Socket) => void) | undefined;

  private constructor(socketPath: string, server: Server) {
    this.socketPath = socketPath;
    this.#server = server;
    server.on("connection", (socket) => {
      const take = this.#onConnection;
      this.#onConnection = undefined;
      if (take) take(socket);
      else socket.destroy(); // nobody asked for a stream: not QEMU's migrate of ours
    });
  }

  static async listen(socketPath: string): Promise<DeviceStateSink> {
    const server = createServer({ allowHalfOpen: false });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(socketPath, () => {
        server.off("error", reject);
        resolve();
      });
    });
    return new DeviceStateSink(socketPath, server);
  }

  /** VM paused: migrates the device state into memory and returns the stream. */
  async capture(qmp: QmpClient, timeoutMs: number): Promise<Buffer> {
    if (this.#onConnection) throw new Error("a device-state capture is already running");
    const received = new Promise<Buffer>((resolve, reject) => {
      this.#onConnection = (socket) => {
        const chunks: Buffer[] = [];
        socket.on("data", (c: Buffer) => chunks.push(c));
        socket.once("error", reject);
        socket.once("end", () => resolve(Buffer.concat(chunks)));
      };
    });
    // If migrate fails before QEMU connects, nobody waits on `received`.
    received.catch(() => undefined);
    try {
      await qmp.migrate(`unix:${this.socketPath}`);
      const [stream] = await Promise.all([received, qmp.waitForMigration({ timeoutMs })]);
      return stream;
    } finally {
      this.#onConnection = undefined;
    }
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    await rm(this.socketPath, { force: true });
  }
}
