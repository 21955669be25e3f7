/**
 * Error tree of @vpc/pageset:
 *
 *   PageSetError (name "PageSetError", code = one of PageSetErrorCode)
 *   └─ TraceFormatError (name "TraceFormatError"): a dirty-trace file or buffer is malformed;
 *      carries the byte `offset` where decoding failed and, when reading a file, its `path`.
 *
 * Callers branch on `code` (and the data fields), never on the message text. `isInstance` checks a
 * `Symbol.for` brand so it still works when two copies of the package are installed.
 */

const PAGESET_ERROR_BRAND = Symbol.for("@vpc/pageset.PageSetError");
const TRACE_FORMAT_ERROR_BRAND = Symbol.for("@vpc/pageset.TraceFormatError");

export type PageSetErrorCode =
  /** A page number is not an integer in [0, pageCount). */
  | "PAGE_OUT_OF_RANGE"
  /** Two page sets (or a set and a bitmap/trace) disagree on pageCount. */
  | "PAGE_COUNT_MISMATCH"
  /** A raw bitmap is too short or has bits set beyond pageCount. */
  | "BAD_BITMAP"
  /** An argument is not acceptable (negative count, non-integer, unsorted ranges, …). */
  | "INVALID_ARGUMENT"
  /** Trace: the data ends in the middle of the header or of a record. */
  | "TRUNCATED"
  /** Trace: the file or record magic is wrong. */
  | "BAD_MAGIC"
  /** Trace: the major version is unknown, or the minor version is newer than this reader. */
  | "UNSUPPORTED_VERSION"
  /** Trace: a CRC32 does not match. */
  | "CHECKSUM_MISMATCH"
  /** Trace: checksums match but a field is out of range or inconsistent. */
  | "CORRUPT"
  /** Trace: an I/O call on the trace file failed (see `op`, `path`, `cause`). */
  | "IO_ERROR";

export interface PageSetErrorOptions {
  cause?: unknown;
}

export class PageSetError extends Error {
  override readonly name: string = "PageSetError";
  readonly code: PageSetErrorCode;
  readonly [PAGESET_ERROR_BRAND] = true;

  constructor(code: PageSetErrorCode, message: string, options: PageSetErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }

  static isInstance(e: unknown): e is PageSetError {
    return typeof e === "object" && e !== null && PAGESET_ERROR_BRAND in e;
  }
}

export interface TraceFormatErrorOptions extends PageSetErrorOptions {
  /** Byte offset (from the start of the trace) of the header or record where decoding failed. */
  offset: number;
  /** Path of the trace file, when reading from a file. */
  path?: string;
  /** The failing I/O operation for IO_ERROR ("open", "read", "write", "sync", "close"). */
  op?: string;
}

export class TraceFormatError extends PageSetError {
  override readonly name: string = "TraceFormatError";
  readonly offset: number;
  readonly path: string | undefined;
  readonly op: string | undefined;
  readonly [TRACE_FORMAT_ERROR_BRAND] = true;

  constructor(code: PageSetErrorCode, message: string, options: TraceFormatErrorOptions) {
    const where = `${options.path === undefined ? "" : `${options.path}: `}at offset ${options.offset}`;
    super(code, `${where}: ${message}`, options);
    this.offset = options.offset;
    this.path = options.path;
    this.op = options.op;
  }

  static override isInstance(e: unknown): e is TraceFormatError {
    return typeof e === "object" && e !== null && TRACE_FORMAT_ERROR_BRAND in e;
  }
}
