/**
 * Controller ↔ host agent RPC frames (pure: no I/O, no timers).
 *
 *   STREAM  ::= { FRAME }
 *   FRAME   ::= LENGTH PAYLOAD
 *   LENGTH  ::= uint32, big-endian: bytes of PAYLOAD (1 .. MAX_RPC_FRAME_BYTES)
 *   PAYLOAD ::= UTF-8 JSON object, one of RpcMessage (tagged by `type`)
 *
 * The stream is an SSH exec channel's stdin/stdout, so it is already ordered and authenticated.
 */
import { RpcError } from "./errors.js";

/** Largest payload accepted (bytes): metrics reports are small; this bounds a corrupt length. */
export const MAX_RPC_FRAME_BYTES = 16 * 1024 * 1024;
/** Bytes of the length prefix. */
const LENGTH_BYTES = 4;

export type RpcMessage =
  | { readonly type: "call"; readonly id: string; readonly method: string; readonly params: unknown }
  | { readonly type: "result"; readonly id: string; readonly value: unknown }
  | {
      readonly type: "error";
      /** null: the peer could not tell which call failed (a protocol error; fatal). */
      readonly id: string | null;
      readonly error: { readonly name: string; readonly code: string | undefined; readonly message: string };
    }
  | { readonly type: "event"; readonly name: string; readonly data: unknown };

export function encodeRpcMessage(msg: RpcMessage): Buffer {
  const payload = Buffer.from(JSON.stringify(msg), "utf8");
  if (payload.length > MAX_RPC_FRAME_BYTES)
    throw new RpcError("RPC_PROTOCOL", `message of ${payload.length} bytes exceeds ${MAX_RPC_FRAME_BYTES}`);
  const head = Buffer.allocUnsafe(LENGTH_BYTES);
  head.writeUInt32BE(payload.length, 0);
  return Buffer.concat([head, payload]);
}

function checkMessage(v: unknown): RpcMessage {
  const bad = (why: string): never => {
    throw new RpcError("RPC_PROTOCOL", `bad RPC message: ${why}`);
  };
  if (typeof v !== "object" || v === null || Array.isArray(v)) return bad("not an object");
  const m = v as Record<string, unknown>;
  switch (m.type) {
    case "call":
      if (typeof m.id !== "string" || typeof m.method !== "string") return bad("call needs id and method");
      return { type: "call", id: m.id, method: m.method, params: m.params };
    case "result":
      if (typeof m.id !== "string") return bad("result needs an id");
      return { type: "result", id: m.id, value: m.value };
    case "error": {
      if (m.id !== null && typeof m.id !== "string") return bad("error id must be a string or null");
      const e = m.error as Record<string, unknown> | null;
      if (typeof e !== "object" || e === null || typeof e.message !== "string" || typeof e.name !== "string")
        return bad("error needs {name, message}");
      return {
        type: "error",
        id: m.id,
        error: { name: e.name, code: typeof e.code === "string" ? e.code : undefined, message: e.message },
      };
    }
    case "event":
      if (typeof m.name !== "string") return bad("event needs a name");
      return { type: "event", name: m.name, data: m.data };
    default:
      return bad(`unknown type ${JSON.stringify(m.type)}`);
  }
}

/** Chunk decoder: keeps the unconsumed tail, returns every complete message. */
export class RpcDecoder {
  #buf: Buffer = Buffer.alloc(0);

  /** Bytes of an incomplete frame held back. */
  get pendingBytes(): number {
    return this.#buf.length;
  }

  /** Throws `RpcError` RPC_PROTOCOL on a bad length or payload; the stream is then unusable. */
  push(chunk: Uint8Array): RpcMessage[] {
    this.#buf = this.#buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#buf, chunk]);
    const out: RpcMessage[] = [];
    let off = 0;
    while (this.#buf.length - off >= LENGTH_BYTES) {
      const len = this.#buf.readUInt32BE(off);
      if (len === 0 || len > MAX_RPC_FRAME_BYTES)
        throw new RpcError("RPC_PROTOCOL", `bad frame length ${len} at offset ${off}`);
      if (this.#buf.length - off - LENGTH_BYTES < len) break;
      const payload = this.#buf.subarray(off + LENGTH_BYTES, off + LENGTH_BYTES + len);
      let parsed: unknown;
      try {
        parsed = JSON.parse(payload.toString("utf8"));
      } catch (cause) {
        throw new RpcError("RPC_PROTOCOL", `frame at offset ${off} is not JSON`, { cause });
      }
      out.push(checkMessage(parsed));
      off += LENGTH_BYTES + len;
    }
    this.#buf = off === 0 ? this.#buf : Buffer.from(this.#buf.subarray(off));
    return out;
  }
}
