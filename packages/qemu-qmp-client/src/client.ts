import { createConnection, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type {
  ExecuteOptions,
  ExecuteParams,
  KnownCommand,
  MigrationCapabilityStatus,
  MigrationInfo,
  QmpCommands,
  StatusInfo,
} from "./commands.js";
import {
  formatAddress,
  type QmpAddress,
  QmpCommandError,
  QmpConnectError,
  QmpDisconnectedError,
  QmpInterruptedError,
  QmpMigrationError,
  QmpProtocolError,
  type QmpState,
  QmpStateError,
  QmpTimeoutError,
} from "./errors.js";
import { type EventListenerOptions, type EventNames, nameMatcher, QmpEventListener } from "./events.js";
import { log, type QmpLogger } from "./logger.js";
import { encodeJsonLine, LineDecoder } from "./protocol/lines.js";
import { classifyMessage, commandMessage, type QmpEvent, type QmpGreeting } from "./protocol/messages.js";

export interface QmpClientOptions {
  /** Socket connect + greeting + capability negotiation must finish within this. Default 10 000. */
  readonly connectTimeoutMs?: number;
  /**
   * If set, connect() retries every this many ms while the socket refuses (ENOENT, ECONNREFUSED),
   * until connectTimeoutMs. QEMU creates its socket file a moment before it listens, and stops
   * listening for a moment after a client leaves. Default: no retry, fail at once.
   */
  readonly connectRetryMs?: number;
  /** Default timeout of each command; `Infinity` for none. Default 30 000. */
  readonly commandTimeoutMs?: number;
  /** Longest message accepted from QEMU, in bytes without the line ending. Default 8 MiB. */
  readonly maxMessageBytes?: number;
  /** Receives debug/warn reports; silent when left out. */
  readonly logger?: QmpLogger;
}

export interface WaitForMigrationOptions {
  /** Reject with QmpTimeoutError after this long. Default 60 000. */
  readonly timeoutMs?: number;
}

/** Every id this client sends starts with this, so ids never collide with anything else. */
export const QMP_ID_PREFIX = "__qmp#";

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024;
const DEFAULT_MIGRATION_TIMEOUT_MS = 60_000;

interface Pending {
  readonly command: string;
  readonly args: Readonly<Record<string, unknown>> | undefined;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout | undefined;
}

/** Everything that lives exactly as long as one socket. */
interface Connection {
  readonly socket: Socket;
  readonly decoder: LineDecoder;
  /** Set until the greeting arrives; settled by the greeting or by the connection ending. */
  greetingWaiter: { resolve: (g: QmpGreeting) => void; reject: (e: Error) => void } | undefined;
  connected: boolean;
  opened: boolean;
  /** quit() was sent: QEMU closing the socket afterwards is the expected, clean ending. */
  quitting: boolean;
  /** Set when the connection starts to end; the first cause wins. */
  ending: { cause: Error; clean: boolean } | undefined;
  readonly closed: Promise<void>;
  markClosed: () => void;
}

type EventHandler = (event: QmpEvent) => void;
type CloseHandler = (cause?: Error) => void;
type StateHandler = (state: QmpState, previous: QmpState) => void;

function timeoutOf(ms: number | undefined, fallback: number): number {
  const value = ms ?? fallback;
  if (!(value > 0)) throw new RangeError(`timeout must be > 0 ms (or Infinity), got ${value}`);
  return value;
}

/**
 * A QMP client over one unix or TCP socket at a time.
 *
 * Lifecycle (`state`): idle → connecting → open → closing → idle. `connect()` needs idle and
 * either ends open or, on any failure, rejects with QmpConnectError and leaves the client idle.
 * Commands and event listeners need open. The connection ends by `close()`, by `quit()`, by QEMU
 * going away, or by a fatal protocol error; then every pending command rejects at once with
 * QmpInterruptedError (its `cause` is the close reason), every event iterator ends (clean close)
 * or throws that reason, `onClose` handlers run, and the client is idle: reconnect by calling
 * `connect()` again. `onEvent`, `onClose` and `onStateChange` handlers stay registered across
 * reconnects; `events()` iterators belong to one connection.
 */
export class QmpClient implements AsyncDisposable {
  readonly connectTimeoutMs: number;
  readonly connectRetryMs: number | undefined;
  readonly commandTimeoutMs: number;
  readonly maxMessageBytes: number;
  private readonly logger: QmpLogger | undefined;

  private currentState: QmpState = "idle";
  private conn: Connection | undefined;
  private lastAddress: QmpAddress | undefined;
  private lastGreeting: QmpGreeting | undefined;
  private nextId = 0;
  /** Counts close() calls, so that a connect() waiting to retry knows it was called off. */
  private closeRequests = 0;
  private readonly pending = new Map<string, Pending>();
  /** Ids whose command timed out: a late reply for one is expected, not suspicious. */
  private readonly abandoned = new Set<string>();
  private readonly listeners = new Set<QmpEventListener>();
  private readonly eventHandlers = new Set<{ accepts: (name: string) => boolean; handler: EventHandler }>();
  private readonly closeHandlers = new Set<CloseHandler>();
  private readonly stateHandlers = new Set<StateHandler>();

  constructor(options: QmpClientOptions = {}) {
    this.connectTimeoutMs = timeoutOf(options.connectTimeoutMs, DEFAULT_CONNECT_TIMEOUT_MS);
    this.connectRetryMs =
      options.connectRetryMs === undefined ? undefined : timeoutOf(options.connectRetryMs, 0);
    this.commandTimeoutMs = timeoutOf(options.commandTimeoutMs, DEFAULT_COMMAND_TIMEOUT_MS);
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.logger = options.logger;
    // Validates maxMessageBytes now rather than at the first connect.
    new LineDecoder(this.maxMessageBytes);
  }

  /** Creates a client and connects it; rejects with QmpConnectError. */
  static async connect(address: QmpAddress, options: QmpClientOptions = {}): Promise<QmpClient> {
    const client = new QmpClient(options);
    await client.connect(address);
    return client;
  }

  get state(): QmpState {
    return this.currentState;
  }

  /** The greeting of the current (or last) connection. Throws QmpStateError before the first one. */
  get greeting(): QmpGreeting {
    if (this.lastGreeting === undefined) throw new QmpStateError("greeting", this.currentState, ["open"]);
    return this.lastGreeting;
  }

  /** The address of the current (or last) connection. */
  get address(): QmpAddress | undefined {
    return this.lastAddress;
  }

  /** Commands sent and not yet answered. Zero whenever the client is idle. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * Opens the socket, reads the greeting and negotiates capabilities, all within
   * connectTimeoutMs. Without an address, reconnects to the last one.
   */
  async connect(address?: QmpAddress): Promise<void> {
    this.require("connect", ["idle"]);
    const target = address ?? this.lastAddress;
    if (target === undefined) throw new TypeError("connect() needs an address the first time");
    this.lastAddress = target;
    const deadline = Date.now() + this.connectTimeoutMs;
    const closes = this.closeRequests;
    for (;;) {
      try {
        await this.connectOnce(target, deadline - Date.now());
        return;
      } catch (err) {
        const retryMs = this.connectRetryMs;
        const code = QmpConnectError.isInstance(err) ? (err.cause as NodeJS.ErrnoException).code : undefined;
        const notListening = code === "ENOENT" || code === "ECONNREFUSED";
        if (retryMs === undefined || !notListening || Date.now() + retryMs >= deadline) throw err;
        await sleep(retryMs);
        if (closes !== this.closeRequests) throw err;
        this.require("connect", ["idle"]);
      }
    }
  }

  private async connectOnce(target: QmpAddress, timeoutMs: number): Promise<void> {
    this.setState("connecting");
    const conn = this.openSocket(target);
    const timer = setTimeout(() => {
      const what = conn.connected ? "greeting and capability negotiation" : "socket connect";
      this.end(conn, new QmpTimeoutError(what, this.connectTimeoutMs), false);
    }, timeoutMs);
    try {
      const greeting = await new Promise<QmpGreeting>((resolve, reject) => {
        if (conn.ending !== undefined) reject(conn.ending.cause);
        else conn.greetingWaiter = { resolve, reject };
      });
      await this.send(conn, "qmp_capabilities", undefined, Number.POSITIVE_INFINITY);
      // A fatal line right behind the reply may already have ended the connection.
      if (conn.ending !== undefined) throw conn.ending.cause;
      this.lastGreeting = greeting;
      conn.opened = true;
      this.setState("open");
      log(this.logger, "debug", "qmp connected", {
        address: formatAddress(target),
        version: greeting.version,
      });
    } catch (err) {
      const cause = err instanceof Error ? err : new Error(String(err));
      this.end(conn, cause, false);
      await conn.closed;
      throw new QmpConnectError(target, conn.ending?.cause ?? cause);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Sends one command and resolves with its `return` value; typed for the commands in
   * QmpCommands. Rejects with QmpCommandError (QEMU said no), QmpTimeoutError, QmpInterruptedError
   * (connection lost first) or QmpStateError (not open).
   */
  execute<C extends KnownCommand>(command: C, ...params: ExecuteParams<C>): Promise<QmpCommands[C]["ret"]>;
  execute<C extends string>(
    command: C extends KnownCommand ? never : C,
    args?: Readonly<Record<string, unknown>>,
    options?: ExecuteOptions,
  ): Promise<unknown>;
  execute(
    command: string,
    args?: Readonly<Record<string, unknown>>,
    options?: ExecuteOptions,
  ): Promise<unknown> {
    try {
      this.require("execute", ["open"]);
      const timeoutMs = timeoutOf(options?.timeoutMs, this.commandTimeoutMs);
      return this.send(this.conn!, command, args, timeoutMs);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * A new listener with its own queue of the events it accepts, from now until it is closed or
   * the connection ends.
   */
  events(options: EventListenerOptions = {}): QmpEventListener {
    this.require("events", ["open"]);
    const listener = new QmpEventListener(options, (l) => this.listeners.delete(l));
    this.listeners.add(listener);
    return listener;
  }

  /** Calls `handler` for each event named (or every event for "*"); returns the unsubscribe function. */
  onEvent(names: EventNames, handler: EventHandler): () => void {
    const entry = { accepts: nameMatcher(names), handler };
    this.eventHandlers.add(entry);
    return () => this.eventHandlers.delete(entry);
  }

  /** Runs after each connection that reached open has ended; `cause` is undefined for a clean close or quit. */
  onClose(handler: CloseHandler): () => void {
    this.closeHandlers.add(handler);
    return () => this.closeHandlers.delete(handler);
  }

  onStateChange(handler: StateHandler): () => void {
    this.stateHandlers.add(handler);
    return () => this.stateHandlers.delete(handler);
  }

  /** Ends the connection (idempotent) and resolves once the socket is closed and the client idle. */
  async close(): Promise<void> {
    this.closeRequests++;
    const conn = this.conn;
    if (conn === undefined) return;
    this.end(conn, new QmpDisconnectedError("client", "connection closed by the client"), true);
    await conn.closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- typed helpers -------------------------------------------------------------------------

  /** Pauses the guest's vCPUs. */
  async stop(options?: ExecuteOptions): Promise<void> {
    await this.execute("stop", undefined, options);
  }

  /** Resumes the guest's vCPUs. */
  async cont(options?: ExecuteOptions): Promise<void> {
    await this.execute("cont", undefined, options);
  }

  queryStatus(options?: ExecuteOptions): Promise<StatusInfo> {
    return this.execute("query-status", undefined, options);
  }

  /** Starts an outgoing migration to `uri` (e.g. "exec:cat > FILE", "tcp:HOST:PORT"); returns once started. */
  async migrate(uri: string, options?: ExecuteOptions): Promise<void> {
    await this.execute("migrate", { uri }, options);
  }

  async migrateSetCapabilities(
    capabilities: readonly MigrationCapabilityStatus[],
    options?: ExecuteOptions,
  ): Promise<void> {
    await this.execute("migrate-set-capabilities", { capabilities }, options);
  }

  queryMigrate(options?: ExecuteOptions): Promise<MigrationInfo> {
    return this.execute("query-migrate", undefined, options);
  }

  /** Starts an incoming migration on a QEMU started with `-incoming defer`. */
  async migrateIncoming(uri: string, options?: ExecuteOptions): Promise<void> {
    await this.execute("migrate-incoming", { uri }, options);
  }

  /** Runs a human monitor (HMP) command line and returns its text output. */
  humanMonitorCommand(
    commandLine: string,
    options?: ExecuteOptions & { cpuIndex?: number },
  ): Promise<string> {
    const args =
      options?.cpuIndex === undefined
        ? { "command-line": commandLine }
        : { "command-line": commandLine, "cpu-index": options.cpuIndex };
    return this.execute("human-monitor-command", args, options);
  }

  /**
   * Asks QEMU to exit and resolves once it has answered and closed the connection; that ending
   * counts as clean (iterators end, onClose gets no cause).
   */
  async quit(options?: ExecuteOptions): Promise<void> {
    this.require("quit", ["open"]);
    const conn = this.conn!;
    const timeoutMs = timeoutOf(options?.timeoutMs, this.commandTimeoutMs);
    conn.quitting = true;
    try {
      await this.send(conn, "quit", undefined, timeoutMs);
    } catch (err) {
      // QEMU may close the socket before its reply gets out; that is still a successful quit.
      const byPeer =
        QmpInterruptedError.isInstance(err) &&
        QmpDisconnectedError.isInstance(err.cause) &&
        err.cause.by === "peer";
      if (!byPeer) {
        conn.quitting = false;
        throw err;
      }
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      if (Number.isFinite(timeoutMs))
        timer = setTimeout(() => reject(new QmpTimeoutError("quit", timeoutMs)), timeoutMs);
    });
    try {
      await Promise.race([conn.closed, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Resolves with the final query-migrate answer once the migration (outgoing or incoming) is
   * `completed`; rejects with QmpMigrationError on `failed`/`cancelled`, QmpTimeoutError on timeout.
   *
   * It polls query-migrate back to back, with no sleep between polls (a sleep adds its whole
   * length to the checkpoint pause). Once a MIGRATION event shows that the `events` migration
   * capability is on, it stops polling and queries again only when QEMU announces a change.
   *
   * On the sending side QEMU reports `completed` a moment before its migration thread moves the
   * run state from `finish-migrate` to `postmigrate`; a `cont` sent in that window would run the
   * guest under a run state that then says postmigrate. So it also waits (polling
   * query-status) for `finish-migrate` to end before it resolves.
   */
  async waitForMigration(options: WaitForMigrationOptions = {}): Promise<MigrationInfo> {
    const timeoutMs = timeoutOf(options.timeoutMs, DEFAULT_MIGRATION_TIMEOUT_MS);
    // Subscribe before the first query so that no status change can slip between the two.
    const changes = this.events({ names: "MIGRATION" });
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    const timedOut = new Promise<never>((_, reject) => {
      if (Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => reject(new QmpTimeoutError("waitForMigration", timeoutMs)), timeoutMs);
      }
    });
    const watch = async (): Promise<MigrationInfo> => {
      let eventDriven = false;
      for (;;) {
        const info = await this.queryMigrate();
        const status = info.status ?? "none";
        if (status === "completed") return this.afterCompletion(info, () => stopped);
        if (status === "failed" || status === "cancelled")
          throw new QmpMigrationError(status, info["error-desc"], info);
        if (stopped) return info;
        eventDriven ||= changes.queued > 0;
        if (!eventDriven) continue;
        if (changes.queued > 0) {
          while (changes.queued > 0) await changes.next();
        } else if ((await changes.next()).done === true) {
          if (stopped) return info;
          // The listener only ends cleanly when the client itself closed the connection.
          throw new QmpInterruptedError(
            "waitForMigration",
            new QmpDisconnectedError("client", "connection closed by the client"),
          );
        }
      }
    };
    const watching = watch();
    // After a timeout the loop is abandoned; keep its later rejection from going unhandled.
    watching.catch(() => {});
    try {
      return await Promise.race([watching, timedOut]);
    } finally {
      stopped = true;
      clearTimeout(timer);
      changes.close();
    }
  }

  /** The end of waitForMigration: wait out `finish-migrate`, then give the final statistics. */
  private async afterCompletion(info: MigrationInfo, stopped: () => boolean): Promise<MigrationInfo> {
    let waited = false;
    while ((await this.queryStatus()).status === "finish-migrate" && !stopped()) waited = true;
    // Statistics such as total-time are filled in by the same step that ends finish-migrate.
    return waited ? this.queryMigrate() : info;
  }

  // --- connection internals (run from socket callbacks) --------------------------------------

  private require(operation: string, required: readonly QmpState[]): void {
    if (!required.includes(this.currentState))
      throw new QmpStateError(operation, this.currentState, required);
  }

  private setState(next: QmpState): void {
    const previous = this.currentState;
    if (previous === next) return;
    this.currentState = next;
    for (const handler of [...this.stateHandlers]) {
      try {
        handler(next, previous);
      } catch (err) {
        log(this.logger, "error", "qmp state handler threw", { error: err });
      }
    }
  }

  private openSocket(address: QmpAddress): Connection {
    const socket =
      "path" in address
        ? createConnection({ path: address.path })
        : createConnection({ host: address.host, port: address.port });
    let markClosed = (): void => {};
    const closed = new Promise<void>((resolve) => {
      markClosed = resolve;
    });
    const conn: Connection = {
      socket,
      decoder: new LineDecoder(this.maxMessageBytes),
      greetingWaiter: undefined,
      connected: false,
      opened: false,
      quitting: false,
      ending: undefined,
      closed,
      markClosed,
    };
    this.conn = conn;
    socket.on("connect", () => {
      conn.connected = true;
      // Commands are single small writes awaiting a reply: Nagle would only add latency.
      if (!("path" in address)) socket.setNoDelay(true);
    });
    socket.on("data", (chunk: Buffer) => this.onData(conn, chunk));
    socket.on("end", () => {
      const unread = conn.decoder.pendingBytes;
      const cause =
        unread > 0
          ? new QmpDisconnectedError(
              "peer",
              `QEMU closed the connection in the middle of a message (${unread} bytes unread)`,
              {
                cause: new QmpProtocolError(
                  "partial-message",
                  `connection ended after ${unread} bytes of an unfinished message`,
                ),
              },
            )
          : new QmpDisconnectedError("peer", "QEMU closed the connection");
      this.end(conn, cause, false);
    });
    socket.on("error", (err) => {
      // Before the socket connects, the system error (ENOENT, ECONNREFUSED) is the clearest cause.
      const cause = conn.connected
        ? new QmpDisconnectedError("peer", `socket error: ${err.message}`, { cause: err })
        : err;
      this.end(conn, cause, false);
    });
    socket.on("close", () => {
      this.end(conn, new QmpDisconnectedError("peer", "connection closed"), false);
      this.finishClose(conn);
    });
    return conn;
  }

  private onData(conn: Connection, chunk: Buffer): void {
    for (const frame of conn.decoder.push(chunk)) {
      if (conn.ending !== undefined) return;
      if (frame.type === "oversized") {
        const error = new QmpProtocolError(
          "oversized-message",
          `QEMU sent a message longer than maxMessageBytes (${this.maxMessageBytes}): at least ${frame.bytesSeen} bytes`,
        );
        this.end(conn, error, false);
        return;
      }
      this.onMessage(conn, frame.text);
    }
  }

  private onMessage(conn: Connection, text: string): void {
    const message = classifyMessage(text);
    if (message.type === "malformed") {
      this.end(
        conn,
        new QmpProtocolError(message.reason, `bad message from QEMU: ${message.detail}`, text),
        false,
      );
      return;
    }
    if (conn.greetingWaiter !== undefined) {
      if (message.type === "greeting") {
        conn.greetingWaiter.resolve(message.greeting);
        conn.greetingWaiter = undefined;
        return;
      }
      // end() rejects the waiting connect() with this error.
      this.end(
        conn,
        new QmpProtocolError(
          "missing-greeting",
          `expected the QMP greeting first, got a ${message.type}`,
          text,
        ),
        false,
      );
      return;
    }
    switch (message.type) {
      case "greeting":
        this.end(
          conn,
          new QmpProtocolError("unexpected-message", "second QMP greeting on one connection", text),
          false,
        );
        return;
      case "event":
        this.dispatchEvent(message.event);
        return;
      case "error":
        if (!message.hasId) {
          // We always send an id, so an id-less error means QEMU could not parse what we sent:
          // the stream is out of step and no reply can be trusted to match its command any more.
          this.end(
            conn,
            new QmpProtocolError(
              "id-less-error",
              `QEMU reported an error without an id: ${message.errorClass}: ${message.desc}`,
              text,
            ),
            false,
          );
          return;
        }
        this.settle(
          message.id,
          (p) => p.reject(new QmpCommandError(p.command, p.args, message.errorClass, message.desc)),
          text,
        );
        return;
      case "return":
        this.settle(message.id, (p) => p.resolve(message.value), text);
        return;
    }
  }

  private settle(id: unknown, action: (pending: Pending) => void, text: string): void {
    const pending = typeof id === "string" ? this.pending.get(id) : undefined;
    if (pending === undefined) {
      if (typeof id === "string" && this.abandoned.delete(id)) {
        log(this.logger, "debug", "qmp reply after its command timed out; dropped", { id });
      } else {
        log(this.logger, "warn", "qmp reply with an unexpected id; dropped", { id, raw: text.slice(0, 200) });
      }
      return;
    }
    this.pending.delete(id as string);
    clearTimeout(pending.timer);
    action(pending);
  }

  private dispatchEvent(event: QmpEvent): void {
    for (const listener of this.listeners) listener.deliver(event);
    for (const { accepts, handler } of [...this.eventHandlers]) {
      if (!accepts(event.event)) continue;
      try {
        handler(event);
      } catch (err) {
        log(this.logger, "error", "qmp event handler threw", { event: event.event, error: err });
      }
    }
  }

  private send(
    conn: Connection,
    command: string,
    args: Readonly<Record<string, unknown>> | undefined,
    timeoutMs: number,
  ): Promise<unknown> {
    // connect() can get here after the connection already ended (e.g. a bad line right behind
    // the greeting); nothing would ever settle a command registered now.
    if (conn.ending !== undefined) return Promise.reject(new QmpInterruptedError(command, conn.ending.cause));
    const id = `${QMP_ID_PREFIX}${(this.nextId++).toString().padStart(5, "0")}`;
    return new Promise((resolve, reject) => {
      const timer = Number.isFinite(timeoutMs)
        ? setTimeout(() => {
            if (!this.pending.delete(id)) return;
            this.abandoned.add(id);
            reject(new QmpTimeoutError(command, timeoutMs));
          }, timeoutMs)
        : undefined;
      this.pending.set(id, { command, args, resolve, reject, timer });
      conn.socket.write(encodeJsonLine(commandMessage(command, id, args)));
    });
  }

  /**
   * Starts ending `conn` (first cause wins): everything waiting on it fails now, with no wait
   * for the socket. `clean` means the ending was asked for (close(), or QEMU leaving after quit).
   */
  private end(conn: Connection, cause: Error, clean: boolean): void {
    if (conn.ending !== undefined) return;
    const asked = clean || (conn.quitting && QmpDisconnectedError.isInstance(cause) && cause.by === "peer");
    conn.ending = { cause, clean: asked };
    this.setState("closing");
    if (!asked) log(this.logger, conn.opened ? "warn" : "debug", "qmp connection lost", { error: cause });
    conn.greetingWaiter?.reject(cause);
    conn.greetingWaiter = undefined;
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new QmpInterruptedError(pending.command, cause));
    }
    this.pending.clear();
    this.abandoned.clear();
    for (const listener of [...this.listeners]) listener.finish(asked ? undefined : cause);
    conn.socket.destroy();
  }

  /** The socket is gone: the client becomes idle and close handlers run. */
  private finishClose(conn: Connection): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    this.setState("idle");
    const { cause, clean } = conn.ending!;
    if (conn.opened) {
      for (const handler of [...this.closeHandlers]) {
        try {
          handler(clean ? undefined : cause);
        } catch (err) {
          log(this.logger, "error", "qmp close handler threw", { error: err });
        }
      }
    }
    conn.markClosed();
  }
}
