/**
 * Wire format of the agent's control socket (pure: no I/O, no timers). See README "Protocol".
 *
 * Every frame, both directions, little-endian:
 *
 *   u32 length   bytes that follow this field (8 + body length)
 *   u32 id       request id, echoed by the reply
 *   u16 op       operation code (Op)
 *   u16 flags    requests: 0; replies: bit 0 = error
 *   body         request: op-specific binary arguments; reply: UTF-8 JSON object
 */
import { ProtocolError } from "./errors.js";

/** Operation codes (u16). */
export const Op = {
  hello: 0,
  attach: 1,
  mode: 2,
  arm: 3,
  harvest: 4,
  peek: 5,
  confirm: 6,
  protect: 7,
  copy: 8,
  release: 9,
  releaseSet: 10,
  stats: 11,
  detach: 12,
  mark: 13,
  checkpoint: 14,
  save: 15,
  saveStatus: 16,
  lazyLoad: 17,
  lazyStatus: 18,
} as const;
export type OpName = keyof typeof Op;

/** Bytes before the body: length (4) + id (4) + op (2) + flags (2). */
export const FRAME_HEADER_BYTES = 12;
/** Largest accepted value of the length field (the agent enforces the same bound). */
export const MAX_FRAME_BYTES = 16 << 20;
/** Reply flag bit 0: the body is an error object {errno, op, message}. */
export const FLAG_ERROR = 1;
/** `copy` argument bit 0: copy only pages still protected for COW (the saver's path). */
export const COPY_ONLY_PROTECTED = 1;

/**
 * What the pause does with the save set (the accumulated set, or every page): copy it all
 * (stop-copy, precopy), protect it all for the saver (cow), or copy the predicted part and
 * protect the rest (vpc).
 */
export type CheckpointPlan = "copy-all" | "protect-all" | "predict";
const PLAN_FLAG: Record<CheckpointPlan, number> = { "copy-all": 2, "protect-all": 4, predict: 8 };
const CP_FULL = 1;
const CP_ADD_SET = 16;
const CP_DIRTY_ONLY = 32;
/** `save` argument bit 0: the set file names pages to save before the others. */
const SAVE_FIRST = 1;

export interface CheckpointRequest {
  readonly plan: CheckpointPlan;
  /** Save every page of guest RAM (a full epoch), not only the accumulated set. */
  readonly full?: boolean;
  /** Also save the pages of the set file (precopy's pages still owed by its live rounds). */
  readonly addSet?: boolean;
  /** Save the harvested interval's D instead of the accumulated set (precopy: its live rounds saved the rest). */
  readonly dirtyOnly?: boolean;
  /** predict: pages after each run of the pre-pause window added to P, as a multiple of the run's length. */
  readonly front?: number;
  /** predict: when the predicted part of the save set reaches this fraction, copy all of it. */
  readonly fallback?: number;
}

export type TrackingMode = "sync" | "async";
const MODE_CODE: Record<TrackingMode, number> = { sync: 0, async: 1 };

export interface Frame {
  id: number;
  op: number;
  flags: number;
  body: Uint8Array;
}

export function encodeFrame(frame: Frame): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + frame.body.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, 8 + frame.body.length, true);
  v.setUint32(4, frame.id >>> 0, true);
  v.setUint16(8, frame.op, true);
  v.setUint16(10, frame.flags, true);
  out.set(frame.body, FRAME_HEADER_BYTES);
  return out;
}

/** Chunk decoder: keeps the unconsumed tail of earlier chunks, returns every complete frame. */
export class FrameDecoder {
  #buf: Uint8Array = new Uint8Array(0);

  /** Bytes held that do not form a complete frame yet. */
  get buffered(): number {
    return this.#buf.length;
  }

  push(chunk: Uint8Array): Frame[] {
    let buf = chunk;
    if (this.#buf.length) {
      buf = new Uint8Array(this.#buf.length + chunk.length);
      buf.set(this.#buf);
      buf.set(chunk, this.#buf.length);
    }
    const frames: Frame[] = [];
    let off = 0;
    while (buf.length - off >= 4) {
      const v = new DataView(buf.buffer, buf.byteOffset + off);
      const len = v.getUint32(0, true);
      if (len < 8 || len > MAX_FRAME_BYTES) {
        throw new ProtocolError(`frame length ${len} out of range [8, ${MAX_FRAME_BYTES}]`, buf.slice(off));
      }
      if (buf.length - off < 4 + len) break;
      frames.push({
        id: v.getUint32(4, true),
        op: v.getUint16(8, true),
        flags: v.getUint16(10, true),
        body: buf.slice(off + FRAME_HEADER_BYTES, off + 4 + len),
      });
      off += 4 + len;
    }
    this.#buf = buf.slice(off);
    return frames;
  }
}

function u32s(...values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const v = new DataView(out.buffer);
  values.forEach((x, i) => {
    v.setUint32(i * 4, x >>> 0, true);
  });
  return out;
}

/** Request bodies, one encoder per op that takes arguments. */
export const requestBody = {
  /** u32 mode, u32 staging slots, u32 reserved (0), memory-backend file path (UTF-8, rest). */
  attach(mode: TrackingMode, stagingSlots: number, memPath: string): Uint8Array {
    const path = new TextEncoder().encode(memPath);
    const out = new Uint8Array(12 + path.length);
    out.set(u32s(MODE_CODE[mode], stagingSlots, 0));
    out.set(path, 12);
    return out;
  },
  /** u32 flags (1 = no background loader), u32 memPath bytes, memPath, lazy map path (rest). */
  lazyLoad(memPath: string, mapPath: string, loader: boolean): Uint8Array {
    const mem = new TextEncoder().encode(memPath);
    const map = new TextEncoder().encode(mapPath);
    const out = new Uint8Array(8 + mem.length + map.length);
    out.set(u32s(loader ? 0 : 1, mem.length));
    out.set(mem, 8);
    out.set(map, 8 + mem.length);
    return out;
  },
  /** u32 flags (1 = wait until the load is done or failed), u32 timeout ms for that wait. */
  lazyStatus(waitMs: number | undefined): Uint8Array {
    return u32s(waitMs === undefined ? 0 : 1, Math.max(0, Math.round(waitMs ?? 0)));
  },
  /** u32 mode. */
  mode(mode: TrackingMode): Uint8Array {
    return u32s(MODE_CODE[mode]);
  },
  /** u32 flags (COPY_ONLY_PROTECTED). The page set travels in the set file. */
  copy(flags: number): Uint8Array {
    return u32s(flags);
  },
  /** u32 slot index, repeated. */
  release(slots: Iterable<number>): Uint8Array {
    return u32s(...slots);
  },
  /** u32 flags, u32 front × 1000, u32 fallback × 1000 (> 1000: never). P travels in the set file. */
  checkpoint(r: CheckpointRequest): Uint8Array {
    const flags =
      PLAN_FLAG[r.plan] |
      (r.full ? CP_FULL : 0) |
      (r.addSet ? CP_ADD_SET : 0) |
      (r.dirtyOnly ? CP_DIRTY_ONLY : 0);
    const front = Math.round(Math.max(0, r.front ?? 0) * 1000);
    const fallback =
      r.fallback === undefined ? 1001 : Math.round(Math.min(1.001, Math.max(0, r.fallback)) * 1000);
    return u32s(flags, front, fallback);
  },
  /**
   * u32 flags (bit 0: the set file holds the pages to save first), u32 shortest save window (µs),
   * u32 most slots the saver may hold staged at once (0: no bound).
   */
  save(first: boolean, minWindowMs: number, maxInUse: number): Uint8Array {
    return u32s(
      first ? SAVE_FIRST : 0,
      Math.round(Math.max(0, minWindowMs) * 1000),
      Math.max(0, Math.floor(maxInUse)),
    );
  },
};

export type Reply =
  | { type: "ok"; id: number; op: number; value: Record<string, unknown> }
  | { type: "error"; id: number; op: number; errno: number; opName: string; message: string };

export function decodeReply(frame: Frame): Reply {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(frame.body));
  } catch (cause) {
    const e = new ProtocolError(`reply ${frame.id}: body is not UTF-8 JSON`, frame.body);
    e.cause = cause;
    throw e;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError(`reply ${frame.id}: body is not a JSON object`, frame.body);
  }
  const obj = value as Record<string, unknown>;
  if (frame.flags & FLAG_ERROR) {
    const { errno, op, message } = obj;
    if (typeof errno !== "number" || typeof op !== "string" || typeof message !== "string") {
      throw new ProtocolError(`reply ${frame.id}: malformed error object`, frame.body);
    }
    return { type: "error", id: frame.id, op: frame.op, errno, opName: op, message };
  }
  return { type: "ok", id: frame.id, op: frame.op, value: obj };
}

/** Builds a reply frame (the agent's side; used by tests and fakes). */
export function encodeReply(
  id: number,
  op: number,
  value: Record<string, unknown>,
  error = false,
): Uint8Array {
  return encodeFrame({
    id,
    op,
    flags: error ? FLAG_ERROR : 0,
    body: new TextEncoder().encode(JSON.stringify(value)),
  });
}
