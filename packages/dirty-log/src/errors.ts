/**
 * Error tree of @vpc/dirty-log:
 *
 *   DirtyLogError (name "DirtyLogError", code = DirtyLogErrorCode)
 *   ├─ AgentError (code "AGENT_ERROR"): the agent refused or failed a command; carries the
 *   │  agent's `errno`, the `op` it was doing and its `agentMessage`.
 *   ├─ StateError (code "STATE"): a method was called in the wrong connection state;
 *   │  carries `state` and `required`.
 *   ├─ InterruptedError (code "INTERRUPTED"): the connection closed while the call was pending;
 *   │  `cause` is the close reason.
 *   └─ ProtocolError (code "PROTOCOL"): a malformed frame or reply (the connection is closed).
 * Plain DirtyLogError codes: "CONNECT" (cannot reach the agent socket), "IO" (reading a shared
 * file failed; `op` and `path` set), "TIMEOUT", "BUILD" (the native agent or harness is missing
 * and cannot be compiled: no C compiler, no `make`, or the compiler failed; `path` set).
 *
 * Callers branch on class, `code` and fields, never on message text. `isInstance` checks a
 * `Symbol.for` brand, so it works across duplicate installs.
 */

const BRAND = Symbol.for("@vpc/dirty-log.DirtyLogError");

export type DirtyLogErrorCode =
  | "AGENT_ERROR"
  | "STATE"
  | "INTERRUPTED"
  | "PROTOCOL"
  | "CONNECT"
  | "IO"
  | "TIMEOUT"
  | "BUILD";

export interface DirtyLogErrorOptions {
  cause?: unknown;
  op?: string;
  path?: string;
}

export class DirtyLogError extends Error {
  override readonly name: string = "DirtyLogError";
  readonly code: DirtyLogErrorCode;
  readonly op: string | undefined;
  readonly path: string | undefined;
  readonly [BRAND] = true;

  constructor(code: DirtyLogErrorCode, message: string, options: DirtyLogErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.op = options.op;
    this.path = options.path;
  }

  static isInstance(e: unknown): e is DirtyLogError {
    return typeof e === "object" && e !== null && BRAND in e;
  }
}

/** The agent answered a command with an error reply. */
export class AgentError extends DirtyLogError {
  override readonly name: string = "AgentError";
  /** Linux errno reported by the agent (e.g. 95 EOPNOTSUPP when the kernel lacks a feature). */
  readonly errno: number;
  readonly agentMessage: string;

  constructor(op: string, errno: number, agentMessage: string) {
    super("AGENT_ERROR", `${op}: ${agentMessage} (errno ${errno})`, { op });
    this.errno = errno;
    this.agentMessage = agentMessage;
  }
}

export class StateError extends DirtyLogError {
  override readonly name: string = "StateError";
  readonly state: string;
  readonly required: string;

  constructor(state: string, required: string, op: string) {
    super("STATE", `${op}: connection is ${state}, needs ${required}`, { op });
    this.state = state;
    this.required = required;
  }
}

export class InterruptedError extends DirtyLogError {
  override readonly name: string = "InterruptedError";

  constructor(op: string, cause: unknown) {
    super("INTERRUPTED", `${op}: connection to the agent closed`, { op, cause });
  }
}

export class ProtocolError extends DirtyLogError {
  override readonly name: string = "ProtocolError";
  /** The offending bytes (frame body), when there are any. */
  readonly bytes: Uint8Array | undefined;

  constructor(message: string, bytes?: Uint8Array) {
    super("PROTOCOL", message);
    this.bytes = bytes;
  }
}
