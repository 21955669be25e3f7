import { FrameFormatError } from "./errors.js";

/**
 * QEMU's `-netdev stream` / `-netdev socket` framing: each Ethernet frame is preceded by its length
 * as a 4-byte big-endian unsigned integer. No magic, no checksum, no resynchronisation: a bad length
 * poisons the rest of the stream, so the decoder refuses it and the adapter drops the connection.
 */

/** QEMU's own receive buffer (`NET_BUFSIZE` = 4096 + 65536): no QEMU frame is larger. */
export const QEMU_MAX_FRAME_BYTES = 69_632;

export const LENGTH_PREFIX_BYTES = 4;

export interface FrameDecoderOptions {
  /** Largest payload accepted; a larger length prefix throws FRAME_TOO_LARGE. Default QEMU_MAX_FRAME_BYTES. */
  maxFrameBytes?: number;
}

/**
 * Chunk decoder for length-prefixed frames. `push` returns every complete frame in the chunk and
 * keeps a partial tail for the next call. Returned frames are views into the pushed chunk (or into
 * an internal copy of a split frame): copy them before keeping them beyond the chunk's lifetime.
 */
export class FrameDecoder {
  readonly maxFrameBytes: number;
  #tail: Uint8Array | undefined;
  /** Stream offset of the first byte of `#tail` (or of the next chunk when there is no tail). */
  #offset = 0;

  constructor(options: FrameDecoderOptions = {}) {
    this.maxFrameBytes = options.maxFrameBytes ?? QEMU_MAX_FRAME_BYTES;
    if (!Number.isInteger(this.maxFrameBytes) || this.maxFrameBytes < 1 || this.maxFrameBytes > 0xffffffff) {
      throw new RangeError(`maxFrameBytes must be an integer in [1, 2^32-1], got ${this.maxFrameBytes}`);
    }
  }

  /** Bytes buffered from an incomplete frame. */
  get pendingBytes(): number {
    return this.#tail?.length ?? 0;
  }

  /** Stream offset of the next undecoded byte (counts every byte pushed and consumed so far). */
  get offset(): number {
    return this.#offset;
  }

  push(chunk: Uint8Array): Uint8Array[] {
    let buf = chunk;
    if (this.#tail !== undefined) {
      const joined = new Uint8Array(this.#tail.length + chunk.length);
      joined.set(this.#tail, 0);
      joined.set(chunk, this.#tail.length);
      buf = joined;
      this.#tail = undefined;
    }
    const frames: Uint8Array[] = [];
    let pos = 0;
    while (buf.length - pos >= LENGTH_PREFIX_BYTES) {
      const len = ((buf[pos]! << 24) | (buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!) >>> 0;
      if (len > this.maxFrameBytes) {
        throw new FrameFormatError(
          "FRAME_TOO_LARGE",
          `length prefix announces ${len} bytes, more than the limit of ${this.maxFrameBytes}`,
          { offset: this.#offset + pos, length: len, limit: this.maxFrameBytes },
        );
      }
      const end = pos + LENGTH_PREFIX_BYTES + len;
      if (end > buf.length) break;
      frames.push(buf.subarray(pos + LENGTH_PREFIX_BYTES, end));
      pos = end;
    }
    this.#offset += pos;
    if (pos < buf.length) this.#tail = buf.slice(pos);
    return frames;
  }
}

/** Writes the 4-byte big-endian length of `frame` at `out[at]` followed by the frame; returns the end offset. */
export function writeFrame(out: Uint8Array, at: number, frame: Uint8Array): number {
  const len = frame.length;
  out[at] = len >>> 24;
  out[at + 1] = (len >>> 16) & 0xff;
  out[at + 2] = (len >>> 8) & 0xff;
  out[at + 3] = len & 0xff;
  out.set(frame, at + LENGTH_PREFIX_BYTES);
  return at + LENGTH_PREFIX_BYTES + len;
}

/** One frame with its length prefix. */
export function encodeFrame(frame: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES + frame.length);
  writeFrame(out, 0, frame);
  return out;
}

/** Many frames in one buffer, for a single `write` on the hot path. */
export function encodeFrames(frames: readonly Uint8Array[]): Buffer {
  let total = 0;
  for (const f of frames) total += LENGTH_PREFIX_BYTES + f.length;
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const f of frames) at = writeFrame(out, at, f);
  return out;
}
