/** File I/O for dirty traces: a streaming writer and readers over the pure codec. */
import { type FileHandle, open } from "node:fs/promises";
import { PageSetError, TraceFormatError } from "./errors.js";
import {
  type DecodedTraceHeader,
  type DecoderOptions,
  type DirtyTrace,
  DirtyTraceDecoder,
  type DirtyTraceHeader,
  type DirtyTraceRecord,
  encodeTraceHeader,
  encodeTraceRecord,
} from "./trace-codec.js";

function ioError(op: string, path: string | undefined, offset: number, cause: unknown): TraceFormatError {
  return new TraceFormatError("IO_ERROR", `${op} failed`, {
    offset,
    op,
    cause,
    ...(path === undefined ? {} : { path }),
  });
}

export interface CreateTraceOptions {
  /** Replace an existing file. Default false: creating over an existing file fails (EEXIST). */
  overwrite?: boolean;
}

/**
 * Appends a dirty trace to a file, one record per `append()`. Each record is encoded and checked
 * before anything is written, and written with one write call, so a crash leaves at most one
 * partial record at the end (readers can skip it with `tolerateTruncatedTail`).
 */
export class DirtyTraceWriter {
  private prevEpoch = -1;
  private closed = false;

  private constructor(
    private readonly handle: FileHandle,
    readonly header: DirtyTraceHeader,
    private readonly path: string | undefined,
    private readonly ownsHandle: boolean,
    /** Bytes written so far (the offset of the next record). */
    private written: number,
  ) {}

  /** Creates `path` and writes the header. */
  static async create(
    path: string,
    header: DirtyTraceHeader,
    options: CreateTraceOptions = {},
  ): Promise<DirtyTraceWriter> {
    const bytes = encodeTraceHeader(header);
    let handle: FileHandle;
    try {
      handle = await open(path, options.overwrite === true ? "w" : "wx");
    } catch (e) {
      throw ioError("open", path, 0, e);
    }
    try {
      await handle.write(bytes, 0, bytes.length, null);
    } catch (e) {
      await handle.close().catch(() => undefined);
      throw ioError("write", path, 0, e);
    }
    return new DirtyTraceWriter(handle, header, path, true, bytes.length);
  }

  /**
   * Writes the header at the handle's current position and appends records after it. The caller
   * keeps ownership of the handle: `close()` flushes but does not close it.
   */
  static async onHandle(handle: FileHandle, header: DirtyTraceHeader): Promise<DirtyTraceWriter> {
    const bytes = encodeTraceHeader(header);
    try {
      await handle.write(bytes, 0, bytes.length, null);
    } catch (e) {
      throw ioError("write", undefined, 0, e);
    }
    return new DirtyTraceWriter(handle, header, undefined, false, bytes.length);
  }

  /** Bytes written so far. */
  get size(): number {
    return this.written;
  }

  async append(record: DirtyTraceRecord): Promise<void> {
    if (this.closed) throw new PageSetError("INVALID_ARGUMENT", "trace writer is closed");
    if (record.epoch <= this.prevEpoch) {
      throw new PageSetError(
        "INVALID_ARGUMENT",
        `epochs must strictly increase: ${record.epoch} after ${this.prevEpoch}`,
      );
    }
    const bytes = encodeTraceRecord(this.header, record);
    try {
      await this.handle.write(bytes, 0, bytes.length, null);
    } catch (e) {
      throw ioError("write", this.path, this.written, e);
    }
    this.prevEpoch = record.epoch;
    this.written += bytes.length;
  }

  /** fsyncs the file, then closes it if the writer opened it. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.handle.sync();
    } catch (e) {
      if (this.ownsHandle) await this.handle.close().catch(() => undefined);
      throw ioError("sync", this.path, this.written, e);
    }
    if (this.ownsHandle) {
      try {
        await this.handle.close();
      } catch (e) {
        throw ioError("close", this.path, this.written, e);
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

export type ReadTraceOptions = Omit<DecoderOptions, "path"> & {
  /** Read size in bytes (default 1 MiB). */
  chunkSize?: number;
};

/** Items from `iterateDirtyTrace`: the header first, then each record with its file offset. */
export type TraceStreamItem =
  | { type: "header"; header: DecodedTraceHeader }
  | { type: "record"; record: DirtyTraceRecord; offset: number }
  | { type: "truncated-tail"; offset: number; bytes: number };

/**
 * Streams a trace file: yields the header, then records as they are decoded, without holding the
 * whole file in memory. With `tolerateTruncatedTail`, a partial last record ends the stream with a
 * `truncated-tail` item instead of an error.
 */
export async function* iterateDirtyTrace(
  path: string,
  options: ReadTraceOptions = {},
): AsyncGenerator<TraceStreamItem, void, undefined> {
  const decoder = new DirtyTraceDecoder({ ...options, path });
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (e) {
    throw ioError("open", path, 0, e);
  }
  try {
    const chunkSize = options.chunkSize ?? 1 << 20;
    let position = 0;
    for (;;) {
      // A fresh buffer per read: decoded items may still point into earlier chunks.
      const buf = new Uint8Array(chunkSize);
      let n: number;
      try {
        ({ bytesRead: n } = await handle.read(buf, 0, chunkSize, position));
      } catch (e) {
        throw ioError("read", path, position, e);
      }
      if (n === 0) break;
      position += n;
      yield* decoder.push(buf.subarray(0, n));
    }
    const tail = decoder.end();
    if (tail !== undefined) yield { type: "truncated-tail", ...tail };
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** Reads a whole trace file into memory. */
export async function readDirtyTrace(path: string, options: ReadTraceOptions = {}): Promise<DirtyTrace> {
  let header: DecodedTraceHeader | undefined;
  const records: DirtyTraceRecord[] = [];
  let truncatedTail: { offset: number; bytes: number } | undefined;
  for await (const item of iterateDirtyTrace(path, options)) {
    if (item.type === "header") header = item.header;
    else if (item.type === "record") records.push(item.record);
    else truncatedTail = { offset: item.offset, bytes: item.bytes };
  }
  // The decoder throws TRUNCATED at end of input when no header was decoded.
  const trace: DirtyTrace = { header: header!, records };
  if (truncatedTail !== undefined) trace.truncatedTail = truncatedTail;
  return trace;
}
