/**
 * Every error this package throws or rejects with. Callers branch on the class (via the static
 * `isInstance`, which survives duplicate installs of this package) and on the fields, never on
 * the message text.
 *
 * ```
 * QmpError                      base; `code` is stable, `cause` keeps the root cause
 * ├─ QmpStateError              method called in the wrong lifecycle state (`state`, `required`)
 * ├─ QmpConnectError            connect() failed; the client is idle again (`address`, `cause`)
 * ├─ QmpCommandError            QEMU answered with an error (`errorClass`, `desc`, `command`, `args`)
 * ├─ QmpInterruptedError        a pending command lost its connection (`command`, `cause` = close reason)
 * ├─ QmpTimeoutError            no answer in time (`operation`, `timeoutMs`)
 * ├─ QmpProtocolError           QEMU sent something we cannot accept (`reason`, `raw`); fatal
 * ├─ QmpDisconnectedError       the connection went away (`by`: "client" | "peer"); a close reason
 * ├─ QmpMigrationError          waitForMigration saw a migration end badly (`status`, `errorDesc`, `info`)
 * └─ QmpOverflowError           an event listener's queue passed its limit unread (`limit`)
 * ```
 */

const BRAND = Symbol.for("qemu-qmp-client.error");

/** Stable machine-readable codes, one per class. */
export type QmpErrorCode =
  | "QMP_ERROR"
  | "QMP_STATE"
  | "QMP_CONNECT"
  | "QMP_COMMAND"
  | "QMP_INTERRUPTED"
  | "QMP_TIMEOUT"
  | "QMP_PROTOCOL"
  | "QMP_DISCONNECTED"
  | "QMP_MIGRATION"
  | "QMP_OVERFLOW";

function hasBrand(value: unknown, brand: symbol): boolean {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[brand] === true;
}

export class QmpError extends Error {
  override readonly name: string = "QmpError";
  readonly code: QmpErrorCode = "QMP_ERROR";
  readonly [BRAND] = true;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }

  static isInstance(value: unknown): value is QmpError {
    return hasBrand(value, BRAND);
  }
}

/** Lifecycle states of a {@link QmpClient}; see the client's doc comment for the transitions. */
export type QmpState = "idle" | "connecting" | "open" | "closing";

const STATE_BRAND = Symbol.for("qemu-qmp-client.error.state");
export class QmpStateError extends QmpError {
  override readonly name = "QmpStateError";
  override readonly code = "QMP_STATE";
  readonly [STATE_BRAND] = true;
  /** The state the client was in. */
  readonly state: QmpState;
  /** The states the operation needs. */
  readonly required: readonly QmpState[];
  readonly operation: string;

  constructor(operation: string, state: QmpState, required: readonly QmpState[]) {
    super(`${operation}() needs state ${required.join(" or ")}, but the client is ${state}`);
    this.operation = operation;
    this.state = state;
    this.required = required;
  }

  static override isInstance(value: unknown): value is QmpStateError {
    return hasBrand(value, STATE_BRAND);
  }
}

/** Where a client connects: a unix socket path, or a TCP host and port. */
export type QmpAddress = { path: string } | { host: string; port: number };

export function formatAddress(address: QmpAddress): string {
  return "path" in address ? `unix:${address.path}` : `tcp:${address.host}:${address.port}`;
}

const CONNECT_BRAND = Symbol.for("qemu-qmp-client.error.connect");
export class QmpConnectError extends QmpError {
  override readonly name = "QmpConnectError";
  override readonly code = "QMP_CONNECT";
  readonly [CONNECT_BRAND] = true;
  readonly address: QmpAddress;

  constructor(address: QmpAddress, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(`cannot connect to QMP at ${formatAddress(address)}: ${why}`, { cause });
    this.address = address;
  }

  static override isInstance(value: unknown): value is QmpConnectError {
    return hasBrand(value, CONNECT_BRAND);
  }
}

const COMMAND_BRAND = Symbol.for("qemu-qmp-client.error.command");
export class QmpCommandError extends QmpError {
  override readonly name = "QmpCommandError";
  override readonly code = "QMP_COMMAND";
  readonly [COMMAND_BRAND] = true;
  /** QEMU's error `class`, e.g. "GenericError", "CommandNotFound", "DeviceNotFound". */
  readonly errorClass: string;
  /** QEMU's human-readable `desc`. */
  readonly desc: string;
  readonly command: string;
  readonly args: Readonly<Record<string, unknown>> | undefined;

  constructor(
    command: string,
    args: Readonly<Record<string, unknown>> | undefined,
    errorClass: string,
    desc: string,
  ) {
    super(`QMP ${command} failed: ${errorClass}: ${desc}`);
    this.command = command;
    this.args = args;
    this.errorClass = errorClass;
    this.desc = desc;
  }

  static override isInstance(value: unknown): value is QmpCommandError {
    return hasBrand(value, COMMAND_BRAND);
  }
}

const INTERRUPTED_BRAND = Symbol.for("qemu-qmp-client.error.interrupted");
export class QmpInterruptedError extends QmpError {
  override readonly name = "QmpInterruptedError";
  override readonly code = "QMP_INTERRUPTED";
  readonly [INTERRUPTED_BRAND] = true;
  readonly command: string;

  /** `cause` is the reason the connection closed (a QmpDisconnectedError, QmpProtocolError, …). */
  constructor(command: string, cause: Error) {
    super(`QMP ${command} interrupted: ${cause.message}`, { cause });
    this.command = command;
  }

  static override isInstance(value: unknown): value is QmpInterruptedError {
    return hasBrand(value, INTERRUPTED_BRAND);
  }
}

const TIMEOUT_BRAND = Symbol.for("qemu-qmp-client.error.timeout");
export class QmpTimeoutError extends QmpError {
  override readonly name = "QmpTimeoutError";
  override readonly code = "QMP_TIMEOUT";
  readonly [TIMEOUT_BRAND] = true;
  /** What timed out: a command name, "greeting", "connect" or "waitForMigration". */
  readonly operation: string;
  readonly timeoutMs: number;

  constructor(operation: string, timeoutMs: number) {
    super(`${operation} timed out after ${timeoutMs} ms`);
    this.operation = operation;
    this.timeoutMs = timeoutMs;
  }

  static override isInstance(value: unknown): value is QmpTimeoutError {
    return hasBrand(value, TIMEOUT_BRAND);
  }
}

/** Why a message from QEMU was refused. All of them end the connection. */
export type QmpProtocolErrorReason =
  | "malformed-json"
  | "unexpected-message"
  | "oversized-message"
  | "missing-greeting"
  | "id-less-error"
  | "partial-message";

const PROTOCOL_BRAND = Symbol.for("qemu-qmp-client.error.protocol");
export class QmpProtocolError extends QmpError {
  override readonly name = "QmpProtocolError";
  override readonly code = "QMP_PROTOCOL";
  readonly [PROTOCOL_BRAND] = true;
  readonly reason: QmpProtocolErrorReason;
  /** The offending text (cut to 200 characters), when there is one. */
  readonly raw: string | undefined;

  constructor(reason: QmpProtocolErrorReason, message: string, raw?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
    this.raw = raw === undefined ? undefined : raw.slice(0, 200);
  }

  static override isInstance(value: unknown): value is QmpProtocolError {
    return hasBrand(value, PROTOCOL_BRAND);
  }
}

const DISCONNECTED_BRAND = Symbol.for("qemu-qmp-client.error.disconnected");
export class QmpDisconnectedError extends QmpError {
  override readonly name = "QmpDisconnectedError";
  override readonly code = "QMP_DISCONNECTED";
  readonly [DISCONNECTED_BRAND] = true;
  /** "client": close() was called; "peer": QEMU closed the socket or died, or the socket failed. */
  readonly by: "client" | "peer";

  constructor(by: "client" | "peer", message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.by = by;
  }

  static override isInstance(value: unknown): value is QmpDisconnectedError {
    return hasBrand(value, DISCONNECTED_BRAND);
  }
}

const MIGRATION_BRAND = Symbol.for("qemu-qmp-client.error.migration");
export class QmpMigrationError extends QmpError {
  override readonly name = "QmpMigrationError";
  override readonly code = "QMP_MIGRATION";
  readonly [MIGRATION_BRAND] = true;
  /** The terminal status QEMU reported: "failed" or "cancelled". */
  readonly status: string;
  /** QEMU's `error-desc` from query-migrate, when it gave one. */
  readonly errorDesc: string | undefined;
  /** The whole query-migrate answer. */
  readonly info: Readonly<Record<string, unknown>>;

  constructor(status: string, errorDesc: string | undefined, info: Readonly<Record<string, unknown>>) {
    super(`migration ${status}${errorDesc === undefined ? "" : `: ${errorDesc}`}`);
    this.status = status;
    this.errorDesc = errorDesc;
    this.info = info;
  }

  static override isInstance(value: unknown): value is QmpMigrationError {
    return hasBrand(value, MIGRATION_BRAND);
  }
}

const OVERFLOW_BRAND = Symbol.for("qemu-qmp-client.error.overflow");
export class QmpOverflowError extends QmpError {
  override readonly name = "QmpOverflowError";
  override readonly code = "QMP_OVERFLOW";
  readonly [OVERFLOW_BRAND] = true;
  /** The listener's `maxQueued`. */
  readonly limit: number;

  constructor(limit: number) {
    super(`event listener fell behind: more than ${limit} events queued and unread`);
    this.limit = limit;
  }

  static override isInstance(value: unknown): value is QmpOverflowError {
    return hasBrand(value, OVERFLOW_BRAND);
  }
}
