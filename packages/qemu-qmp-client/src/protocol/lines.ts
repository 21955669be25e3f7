/**
 * Newline framing, with no I/O and no timers: feed it chunks as they come off a socket and it
 * hands back every complete line, keeping the unfinished tail for the next chunk.
 *
 * QEMU ends each QMP message with "\r\n"; the decoder accepts "\n" too and strips one "\r"
 * before it. Lines are decoded as UTF-8 only once complete, so a multi-byte character split
 * across chunks survives. Blank lines are skipped.
 *
 * A line longer than `maxLineBytes` (not counting its line ending) is reported once as an
 * `oversized` frame and its bytes are discarded up to the next "\n", so memory stays bounded and
 * the caller chooses whether to carry on (resynchronised at the next line) or give up.
 */

export type LineFrame =
  | { readonly type: "line"; readonly text: string }
  | { readonly type: "oversized"; readonly bytesSeen: number };

const LF = 0x0a;
const CR = 0x0d;

export class LineDecoder {
  readonly maxLineBytes: number;
  /** Unfinished line bytes from earlier chunks (never more than maxLineBytes + 1 of them). */
  private tail: Buffer = Buffer.alloc(0);
  /** While > 0 we are skipping an oversized line; counts bytes seen of it so far. */
  private skipping = 0;

  constructor(maxLineBytes: number) {
    if (!Number.isSafeInteger(maxLineBytes) || maxLineBytes < 1) {
      throw new RangeError(`maxLineBytes must be a positive integer, got ${maxLineBytes}`);
    }
    this.maxLineBytes = maxLineBytes;
  }

  /** Bytes of an unfinished line held back; non-zero at end of stream means a cut-off message. */
  get pendingBytes(): number {
    return this.skipping > 0 ? this.skipping : this.tail.length;
  }

  push(chunk: Uint8Array): LineFrame[] {
    const frames: LineFrame[] = [];
    let data = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    while (data.length > 0) {
      const nl = data.indexOf(LF);
      if (this.skipping > 0) {
        if (nl < 0) {
          this.skipping += data.length;
          return frames;
        }
        this.skipping = 0;
        data = data.subarray(nl + 1);
        continue;
      }
      if (nl < 0) {
        // +1 leaves room for a "\r" that may turn out to be this line's ending.
        if (this.tail.length + data.length > this.maxLineBytes + 1) {
          this.skipping = this.tail.length + data.length;
          this.tail = Buffer.alloc(0);
          frames.push({ type: "oversized", bytesSeen: this.skipping });
        } else {
          this.tail = this.tail.length === 0 ? Buffer.from(data) : Buffer.concat([this.tail, data]);
        }
        return frames;
      }
      const piece = data.subarray(0, nl);
      const line = this.tail.length === 0 ? piece : Buffer.concat([this.tail, piece]);
      this.tail = Buffer.alloc(0);
      data = data.subarray(nl + 1);
      const end = line.length > 0 && line[line.length - 1] === CR ? line.length - 1 : line.length;
      if (end > this.maxLineBytes) {
        frames.push({ type: "oversized", bytesSeen: end });
      } else if (end > 0) {
        frames.push({ type: "line", text: line.toString("utf8", 0, end) });
      }
    }
    return frames;
  }
}

/** One JSON value as one line, ready to write. */
export function encodeJsonLine(value: unknown): Buffer {
  return Buffer.from(`${JSON.stringify(value)}\n`, "utf8");
}
