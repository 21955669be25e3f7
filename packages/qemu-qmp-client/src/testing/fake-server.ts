import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { QmpAddress } from "../errors.js";
import { encodeJsonLine, LineDecoder } from "../protocol/lines.js";
import type { QmpGreeting } from "../protocol/messages.js";

/** What a handler answers: a result, a QMP error, raw text to write as is, or nothing at all. */
export type FakeReply =
  | { readonly return: unknown }
  | { readonly error: { readonly class: string; readonly desc: string } }
  | { readonly raw: string }
  | undefined;

export interface ReceivedCommand {
  readonly execute: string;
  readonly arguments: Record<string, unknown> | undefined;
  readonly id: unknown;
  /** Which accepted connection (0, 1, …) sent it. */
  readonly connection: number;
}

export type FakeCommandHandler = (
  command: ReceivedCommand,
  server: FakeQmpServer,
) => FakeReply | Promise<FakeReply>;

export interface FakeQmpServerOptions {
  /** The greeting to send; a string is written raw (add "\r\n" yourself); false sends none. */
  readonly greeting?: QmpGreeting | string | false;
  /** Listen on 127.0.0.1 on a free port instead of a unix socket. */
  readonly tcp?: boolean;
  /** Handlers by command name, over the built-in ones. */
  readonly handlers?: Readonly<Record<string, FakeCommandHandler>>;
}

export const FAKE_GREETING: QmpGreeting = {
  version: { qemu: { major: 7, minor: 2, micro: 0 }, package: "fake-qmp" },
  capabilities: ["oob"],
};

/**
 * An in-process QMP server speaking QEMU's wire format, for tests of QMP clients without QEMU.
 *
 * It behaves like QEMU where it matters: greeting first, commands refused until
 * `qmp_capabilities`, "\r\n" line endings, replies echo the id, and a small run state machine
 * (`stop`/`cont` emit STOP/RESUME, `quit` answers, emits SHUTDOWN and hangs up). Each
 * handler can override a command, answer late, answer wrongly, or never answer.
 *
 * ```ts
 * const server = await FakeQmpServer.start({ handlers: { "query-kvm": () => ({ return: { enabled: false } }) } });
 * const qmp = await QmpClient.connect(server.address);
 * ```
 */
export class FakeQmpServer {
  readonly address: QmpAddress;
  /** Every command received, in arrival order, over all connections. */
  readonly received: ReceivedCommand[] = [];
  /** Run state reported by query-status; changed by stop, cont and tests. */
  status = "paused";
  private readonly handlers = new Map<string, FakeCommandHandler>();
  private readonly sockets = new Set<Socket>();
  private accepted = 0;
  private readonly commandWaiters: { name: string; resolve: (c: ReceivedCommand) => void }[] = [];

  private constructor(
    private readonly server: Server,
    address: QmpAddress,
    private readonly dir: string | undefined,
    private readonly greeting: QmpGreeting | string | false,
  ) {
    this.address = address;
  }

  static async start(options: FakeQmpServerOptions = {}): Promise<FakeQmpServer> {
    const dir = options.tcp === true ? undefined : await mkdtemp(join(tmpdir(), "fake-qmp-"));
    const server = createServer();
    const address = await new Promise<QmpAddress>((resolve, reject) => {
      server.once("error", reject);
      const ready = (): void => {
        const bound = server.address();
        resolve(
          typeof bound === "object" && bound !== null
            ? { host: "127.0.0.1", port: bound.port }
            : { path: bound! },
        );
      };
      if (dir === undefined) server.listen(0, "127.0.0.1", ready);
      else server.listen(join(dir, "qmp.sock"), ready);
    });
    const fake = new FakeQmpServer(server, address, dir, options.greeting ?? FAKE_GREETING);
    for (const [name, handler] of Object.entries(options.handlers ?? {})) fake.handle(name, handler);
    server.on("connection", (socket) => fake.accept(socket));
    return fake;
  }

  /** Connections accepted so far. */
  get connections(): number {
    return this.accepted;
  }

  /** Connections open now. */
  get openConnections(): number {
    return this.sockets.size;
  }

  /** Sets (or replaces) the handler of one command. */
  handle(command: string, handler: FakeCommandHandler): void {
    this.handlers.set(command, handler);
  }

  /** Resolves with the next `name` command to arrive after this call. */
  nextCommand(name: string): Promise<ReceivedCommand> {
    return new Promise((resolve) => this.commandWaiters.push({ name, resolve }));
  }

  /** Sends an event, with a timestamp, to every connection. */
  emitEvent(event: string, data?: Record<string, unknown>): void {
    const now = Date.now();
    const timestamp = { seconds: Math.floor(now / 1000), microseconds: (now % 1000) * 1000 };
    this.writeAll(encodeJsonLine(data === undefined ? { event, timestamp } : { event, data, timestamp }));
  }

  /** Writes text to every connection exactly as given (no line ending added). */
  sendRaw(text: string | Uint8Array): void {
    this.writeAll(typeof text === "string" ? Buffer.from(text, "utf8") : text);
  }

  /** Cuts every connection, as if QEMU had died. */
  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  /** Stops listening, cuts connections and removes the socket directory. */
  async close(): Promise<void> {
    this.dropConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.dir !== undefined) await rm(this.dir, { recursive: true, force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private writeAll(data: Uint8Array): void {
    for (const socket of this.sockets) socket.write(data);
  }

  private accept(socket: Socket): void {
    const connection = this.accepted++;
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    if (this.greeting !== false) {
      socket.write(
        typeof this.greeting === "string" ? this.greeting : encodeJsonLine({ QMP: this.greeting }),
      );
    }
    const decoder = new LineDecoder(1024 * 1024);
    let negotiated = false;
    socket.on("data", (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) {
        if (frame.type !== "line") continue;
        let message: Record<string, unknown>;
        try {
          message = JSON.parse(frame.text) as Record<string, unknown>;
        } catch {
          // QEMU answers unparsable input with an id-less GenericError.
          reply(socket, undefined, { error: { class: "GenericError", desc: "JSON parse error" } });
          continue;
        }
        const command: ReceivedCommand = {
          execute: String(message.execute),
          arguments: message.arguments as Record<string, unknown> | undefined,
          id: message.id,
          connection,
        };
        this.received.push(command);
        const waiter = this.commandWaiters.findIndex((w) => w.name === command.execute);
        if (waiter >= 0) this.commandWaiters.splice(waiter, 1)[0]!.resolve(command);
        if (!negotiated && command.execute !== "qmp_capabilities") {
          const desc = "Expecting capabilities negotiation with 'qmp_capabilities'";
          reply(socket, command.id, { error: { class: "CommandNotFound", desc } });
          continue;
        }
        if (command.execute === "qmp_capabilities") negotiated = true;
        const handler = this.handlers.get(command.execute) ?? builtIn[command.execute];
        const answer = handler === undefined ? notFound(command.execute) : handler(command, this);
        void Promise.resolve(answer).then((r) => {
          if (!socket.destroyed) reply(socket, command.id, r);
          // Like QEMU: the reply, then SHUTDOWN, then the monitor goes away.
          if (command.execute === "quit" && handler === builtIn.quit) {
            this.emitEvent("SHUTDOWN", { guest: false, reason: "host-qmp-quit" });
            socket.end();
          }
        });
      }
    });
  }
}

function notFound(command: string): FakeReply {
  return { error: { class: "CommandNotFound", desc: `The command ${command} has not been found` } };
}

function reply(socket: Socket, id: unknown, answer: FakeReply): void {
  if (answer === undefined) return;
  if ("raw" in answer) {
    socket.write(answer.raw);
    return;
  }
  socket.write(encodeJsonLine(id === undefined ? answer : { ...answer, id }));
}

const builtIn: Record<string, FakeCommandHandler> = {
  qmp_capabilities: () => ({ return: {} }),
  "query-status": (_, s) => ({
    return: { status: s.status, singlestep: false, running: s.status === "running" },
  }),
  stop: (_, s) => {
    if (s.status === "running") {
      s.status = "paused";
      s.emitEvent("STOP");
    }
    return { return: {} };
  },
  cont: (_, s) => {
    if (s.status !== "running") {
      s.status = "running";
      s.emitEvent("RESUME");
    }
    return { return: {} };
  },
  "human-monitor-command": (c, s) =>
    c.arguments?.["command-line"] === "info status"
      ? { return: `VM status: ${s.status}\r\n` }
      : { return: `unknown command: '${String(c.arguments?.["command-line"])}'\r\n` },
  quit: () => ({ return: {} }),
};
