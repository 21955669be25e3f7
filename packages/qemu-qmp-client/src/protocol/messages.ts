/**
 * QMP message shapes and their classification, with no I/O: one line of text in, one tagged
 * message out. The client above decides what each kind means for the connection.
 *
 * Server → client (QMP spec, docs/interop/qmp-spec): a greeting `{"QMP": {...}}` first, then
 * replies `{"return": X, "id"?: ID}` or `{"error": {"class", "desc"}, "id"?: ID}`, and events
 * `{"event", "data"?, "timestamp": {"seconds", "microseconds"}}` at any point in between.
 */

export interface QmpVersion {
  readonly qemu: { readonly major: number; readonly minor: number; readonly micro: number };
  /** Distribution build string, e.g. "Debian 1:7.2+dfsg-7". */
  readonly package: string;
}

export interface QmpGreeting {
  readonly version: QmpVersion;
  /** Capabilities QEMU offers for negotiation, e.g. ["oob"]. */
  readonly capabilities: readonly string[];
}

export interface QmpEvent<Data = Record<string, unknown>> {
  readonly event: string;
  readonly data: Data;
  /** When QEMU emitted the event, as QEMU's wall clock in seconds and microseconds. */
  readonly timestamp: { readonly seconds: number; readonly microseconds: number };
}

/** Ids are whatever JSON QEMU echoes back; this client only ever sends strings. */
export type QmpId = unknown;

export type QmpMessage =
  | { readonly type: "greeting"; readonly greeting: QmpGreeting }
  | { readonly type: "return"; readonly id: QmpId; readonly hasId: boolean; readonly value: unknown }
  | {
      readonly type: "error";
      readonly id: QmpId;
      readonly hasId: boolean;
      readonly errorClass: string;
      readonly desc: string;
    }
  | { readonly type: "event"; readonly event: QmpEvent }
  | {
      readonly type: "malformed";
      readonly reason: "malformed-json" | "unexpected-message";
      readonly detail: string;
    };

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

function classifyGreeting(body: unknown): QmpMessage {
  const bad = (detail: string): QmpMessage => ({ type: "malformed", reason: "unexpected-message", detail });
  if (!isObject(body) || !isObject(body.version) || !Array.isArray(body.capabilities)) {
    return bad("greeting without version or capabilities");
  }
  const qemu = body.version.qemu;
  if (!isObject(qemu) || !isCount(qemu.major) || !isCount(qemu.minor) || !isCount(qemu.micro)) {
    return bad("greeting without version.qemu.{major,minor,micro}");
  }
  const capabilities = body.capabilities.filter((c): c is string => typeof c === "string");
  const pkg = typeof body.version.package === "string" ? body.version.package : "";
  return {
    type: "greeting",
    greeting: {
      version: { qemu: { major: qemu.major, minor: qemu.minor, micro: qemu.micro }, package: pkg },
      capabilities,
    },
  };
}

/** Classifies one line of QMP text. Never throws: unusable input becomes a `malformed` message. */
export function classifyMessage(text: string): QmpMessage {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { type: "malformed", reason: "malformed-json", detail: (err as Error).message };
  }
  if (!isObject(parsed)) {
    return { type: "malformed", reason: "unexpected-message", detail: "message is not a JSON object" };
  }
  if ("QMP" in parsed) return classifyGreeting(parsed.QMP);
  const hasId = "id" in parsed;
  if ("return" in parsed) return { type: "return", id: parsed.id, hasId, value: parsed.return };
  if ("error" in parsed) {
    const error = parsed.error;
    if (!isObject(error) || typeof error.class !== "string" || typeof error.desc !== "string") {
      return {
        type: "malformed",
        reason: "unexpected-message",
        detail: "error reply without class and desc",
      };
    }
    return { type: "error", id: parsed.id, hasId, errorClass: error.class, desc: error.desc };
  }
  if (typeof parsed.event === "string") {
    const ts = isObject(parsed.timestamp) ? parsed.timestamp : {};
    return {
      type: "event",
      event: {
        event: parsed.event,
        data: isObject(parsed.data) ? parsed.data : {},
        timestamp: {
          seconds: isCount(ts.seconds) ? ts.seconds : 0,
          microseconds: isCount(ts.microseconds) ? ts.microseconds : 0,
        },
      },
    };
  }
  return { type: "malformed", reason: "unexpected-message", detail: "neither greeting, reply nor event" };
}

/** A command as QEMU expects it; `arguments` is left out when there are none. */
export function commandMessage(command: string, id: string, args?: Readonly<Record<string, unknown>>): Json {
  return args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
}
