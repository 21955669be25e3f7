/**
 * The dirty-trace format (see FORMAT.md): pure encoders and a chunk decoder, no I/O.
 *
 *   TRACE  ::= HEADER { RECORD }
 *   HEADER ::= "VPCDTRC\0" major:u16 minor:u16 headerLength:u32 pageSize:u32 pageCount:u32
 *              guestRamBytes:u64 mode:u8 reserved:3 metadataLength:u32 metadata crc:u32
 *   RECORD ::= "DREC" payloadLength:u32 PAYLOAD crc:u32
 */

import { crc32 } from "node:zlib";
import { PageSetError, TraceFormatError } from "./errors.js";
import { ByteReader, ByteWriter, OutOfData } from "./internal/bytes.js";
import { PageSet } from "./page-set.js";

export const TRACE_MAGIC = new Uint8Array([0x56, 0x50, 0x43, 0x44, 0x54, 0x52, 0x43, 0x00]); // "VPCDTRC\0"
export const RECORD_MAGIC = new Uint8Array([0x44, 0x52, 0x45, 0x43]); // "DREC"
export const TRACE_VERSION = { major: 1, minor: 0 } as const;

/** Fixed part of the header before the metadata: magic 8 + versions 4 + lengths/fields 28. */
const HEADER_FIXED_BYTES = 40;
/** Record framing: magic 4 + payloadLength 4 before the payload, crc 4 after it. */
const RECORD_PREFIX_BYTES = 8;
const CRC_BYTES = 4;
/** Refuse absurd lengths before buffering them: a record holds at most a few bitmaps of 2^32 pages. */
const MAX_RECORD_PAYLOAD = 0x7fff_ffff;

export type TrackingMode = "sync" | "async";

export interface DirtyTraceHeader {
  /** Guest page size in bytes (4096 on x86). */
  pageSize: number;
  /** Number of guest pages the bitmaps cover. */
  pageCount: number;
  /** Guest RAM size in bytes (normally pageSize × pageCount). */
  guestRamBytes: number;
  /** How the agent tracked writes: `sync` (a fault per first write, exact order) or `async`. */
  trackingMode: TrackingMode;
  /** Free-form JSON object: workload name, VM id, interval, host, … */
  metadata: Record<string, unknown>;
}

export interface DecodedTraceHeader extends DirtyTraceHeader {
  version: { major: number; minor: number };
}

/** One page set of a first-write order in classes: pages written within thresholdNs of resume. */
export interface WriteClass {
  thresholdNs: number;
  pages: PageSet;
}

export type FirstWriteOrder =
  | { kind: "none" }
  /** Pages in first-write order, with each first write's ns offset from interval start. */
  | { kind: "exact"; pages: Uint32Array; offsetsNs: Float64Array }
  /**
   * Cumulative classes: thresholds strictly increase and each class's pages include the previous
   * class's pages (the agent's timed peeks report everything written so far).
   */
  | { kind: "classes"; classes: WriteClass[] };

export interface DirtyTraceRecord {
  /** Epoch that ends this interval. Strictly increasing along a trace. */
  epoch: number;
  /** Interval start and end on a monotonic clock, in ns. */
  startNs: bigint;
  endNs: bigint;
  /** D(epoch): pages written during the interval. */
  dirty: PageSet;
  order: FirstWriteOrder;
}

const ORDER_NONE = 0;
const ORDER_EXACT = 1;
const ORDER_CLASSES = 2;
const SET_RANGES = 0;
const SET_BITMAP = 1;

function invalid(message: string): PageSetError {
  return new PageSetError("INVALID_ARGUMENT", message);
}

function isU32(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

function validateHeader(h: DirtyTraceHeader): void {
  if (!isU32(h.pageSize) || h.pageSize === 0)
    throw invalid(`pageSize must be a positive u32, got ${h.pageSize}`);
  if (!isU32(h.pageCount)) throw invalid(`pageCount must be a u32, got ${h.pageCount}`);
  if (!Number.isSafeInteger(h.guestRamBytes) || h.guestRamBytes < 0) {
    throw invalid(`guestRamBytes must be a non-negative safe integer, got ${h.guestRamBytes}`);
  }
  if (h.trackingMode !== "sync" && h.trackingMode !== "async") {
    throw invalid(`trackingMode must be "sync" or "async", got ${String(h.trackingMode)}`);
  }
  if (typeof h.metadata !== "object" || h.metadata === null || Array.isArray(h.metadata)) {
    throw invalid("metadata must be a JSON object");
  }
}

export function encodeTraceHeader(header: DirtyTraceHeader): Uint8Array {
  validateHeader(header);
  const meta = new TextEncoder().encode(JSON.stringify(header.metadata));
  const w = new ByteWriter(HEADER_FIXED_BYTES + meta.length + CRC_BYTES);
  w.bytes(TRACE_MAGIC).u16(TRACE_VERSION.major).u16(TRACE_VERSION.minor);
  w.u32(HEADER_FIXED_BYTES + meta.length + CRC_BYTES);
  w.u32(header.pageSize).u32(header.pageCount).u64(BigInt(header.guestRamBytes));
  w.u8(header.trackingMode === "sync" ? 0 : 1)
    .u8(0)
    .u8(0)
    .u8(0);
  w.u32(meta.length).bytes(meta);
  w.u32(crc32(w.view8()));
  return w.view8().slice();
}

/** Bytes of the LEB128 varint encoding of v. */
function varintLength(v: number): number {
  let n = 1;
  for (let x = v; x >= 0x80; x = Math.floor(x / 0x80)) n++;
  return n;
}

function rangesEncodedLength(ranges: { start: number; count: number }[]): number {
  let n = varintLength(ranges.length);
  let prevEnd = 0;
  for (const r of ranges) {
    n += varintLength(r.start - prevEnd) + varintLength(r.count);
    prevEnd = r.start + r.count;
  }
  return n;
}

/** Writes a page set as run-length ranges or as a raw bitmap, whichever is smaller. */
function writePageSet(w: ByteWriter, set: PageSet): void {
  const ranges = set.toRanges();
  const bitmapBytes = (set.pageCount + 7) >>> 3;
  if (rangesEncodedLength(ranges) < bitmapBytes) {
    w.u8(SET_RANGES).varint(ranges.length);
    let prevEnd = 0;
    for (const r of ranges) {
      w.varint(r.start - prevEnd).varint(r.count);
      prevEnd = r.start + r.count;
    }
  } else {
    w.u8(SET_BITMAP).bytes(set.toBytes());
  }
}

function validateRecord(header: DirtyTraceHeader, r: DirtyTraceRecord): void {
  if (!isU32(r.epoch)) throw invalid(`epoch must be a u32, got ${r.epoch}`);
  if (r.startNs < 0n || r.endNs < r.startNs || r.endNs >= 1n << 64n) {
    throw invalid(`interval [${r.startNs}, ${r.endNs}] must satisfy 0 <= startNs <= endNs < 2^64`);
  }
  if (r.dirty.pageCount !== header.pageCount) {
    throw new PageSetError(
      "PAGE_COUNT_MISMATCH",
      `epoch ${r.epoch}: dirty set has ${r.dirty.pageCount} pages, trace has ${header.pageCount}`,
    );
  }
  const o = r.order;
  if (o.kind === "exact") {
    if (header.trackingMode !== "sync") throw invalid(`epoch ${r.epoch}: exact order needs sync tracking`);
    if (o.pages.length !== o.offsetsNs.length) {
      throw invalid(`epoch ${r.epoch}: ${o.pages.length} ordered pages but ${o.offsetsNs.length} offsets`);
    }
    const seen = new PageSet(header.pageCount);
    let prev = 0;
    for (let i = 0; i < o.pages.length; i++) {
      const p = o.pages[i]!;
      const t = o.offsetsNs[i]!;
      if (!r.dirty.has(p)) throw invalid(`epoch ${r.epoch}: ordered page ${p} is not in the dirty set`);
      if (seen.has(p)) throw invalid(`epoch ${r.epoch}: page ${p} appears twice in the order`);
      seen.add(p);
      if (!Number.isSafeInteger(t) || t < prev) {
        throw invalid(`epoch ${r.epoch}: offsets must be non-decreasing integers, got ${t} after ${prev}`);
      }
      prev = t;
    }
  } else if (o.kind === "classes") {
    if (header.trackingMode !== "async") throw invalid(`epoch ${r.epoch}: write classes need async tracking`);
    let prevT = -1;
    let prevSet: PageSet | undefined;
    for (const c of o.classes) {
      if (!Number.isSafeInteger(c.thresholdNs) || c.thresholdNs <= prevT) {
        throw invalid(`epoch ${r.epoch}: class thresholds must strictly increase, got ${c.thresholdNs}`);
      }
      if (c.pages.pageCount !== header.pageCount || !c.pages.isSubsetOf(r.dirty)) {
        throw invalid(`epoch ${r.epoch}: class ${c.thresholdNs} ns must be a subset of the dirty set`);
      }
      if (prevSet !== undefined && !prevSet.isSubsetOf(c.pages)) {
        throw invalid(`epoch ${r.epoch}: class ${c.thresholdNs} ns must include the earlier classes`);
      }
      prevT = c.thresholdNs;
      prevSet = c.pages;
    }
  }
}

/** Encodes one record (framing, payload and CRC). Validates it against the header first. */
export function encodeTraceRecord(header: DirtyTraceHeader, record: DirtyTraceRecord): Uint8Array {
  validateRecord(header, record);
  const w = new ByteWriter(1024);
  w.bytes(RECORD_MAGIC).u32(0);
  w.u32(record.epoch).u32(0).u64(record.startNs).u64(record.endNs);
  writePageSet(w, record.dirty);
  const o = record.order;
  if (o.kind === "none") {
    w.u8(ORDER_NONE);
  } else if (o.kind === "exact") {
    w.u8(ORDER_EXACT).varint(o.pages.length);
    for (let i = 0; i < o.pages.length; i++) w.u32(o.pages[i]!);
    let prev = 0;
    for (let i = 0; i < o.offsetsNs.length; i++) {
      w.varint(o.offsetsNs[i]! - prev);
      prev = o.offsetsNs[i]!;
    }
  } else {
    w.u8(ORDER_CLASSES).varint(o.classes.length);
    let prev: PageSet | undefined;
    for (const c of o.classes) {
      // Stored as the pages new in this class; the reader rebuilds the cumulative sets.
      w.varint(c.thresholdNs);
      writePageSet(w, prev === undefined ? c.pages : c.pages.andNot(prev));
      prev = c.pages;
    }
  }
  const payloadLength = w.length - RECORD_PREFIX_BYTES;
  if (payloadLength > MAX_RECORD_PAYLOAD)
    throw invalid(`record payload of ${payloadLength} bytes is too large`);
  w.patchU32(4, payloadLength);
  w.u32(crc32(w.view8()));
  return w.view8().slice();
}

/** A whole trace in memory. */
export interface DirtyTrace {
  header: DecodedTraceHeader;
  records: DirtyTraceRecord[];
  /** Set when decoding with `tolerateTruncatedTail` and the data ended inside a record. */
  truncatedTail?: { offset: number; bytes: number };
}

export function encodeDirtyTrace(header: DirtyTraceHeader, records: Iterable<DirtyTraceRecord>): Uint8Array {
  const parts: Uint8Array[] = [encodeTraceHeader(header)];
  let prevEpoch = -1;
  for (const r of records) {
    if (r.epoch <= prevEpoch) throw invalid(`epochs must strictly increase: ${r.epoch} after ${prevEpoch}`);
    prevEpoch = r.epoch;
    parts.push(encodeTraceRecord(header, r));
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export type DecodedTraceItem =
  | { type: "header"; header: DecodedTraceHeader }
  | { type: "record"; record: DirtyTraceRecord; offset: number };

export interface DecoderOptions {
  /** Named in error messages and errors' `path`. */
  path?: string;
  /**
   * When the data ends inside a record (a recorder that crashed mid-write), report the tail
   * through `end()` instead of throwing. A truncated header still throws.
   */
  tolerateTruncatedTail?: boolean;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Chunk decoder for the dirty-trace format: push chunks as they arrive from a file or stream, get
 * back every complete header/record, call `end()` at end of input. Errors are TraceFormatErrors
 * whose `offset` is the start of the header or record that failed.
 */
export class DirtyTraceDecoder {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  /** Absolute offset of the first buffered byte. */
  private offset = 0;
  private header: DecodedTraceHeader | undefined;
  private prevEpoch = -1;

  constructor(private readonly options: DecoderOptions = {}) {}

  private fail(code: ConstructorParameters<typeof TraceFormatError>[0], message: string, at: number): never {
    throw new TraceFormatError(
      code,
      message,
      this.options.path === undefined ? { offset: at } : { offset: at, path: this.options.path },
    );
  }

  /** The first n buffered bytes as one array (joins chunks only when a unit spans them). */
  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const out = new Uint8Array(n);
    let at = 0;
    for (const c of this.chunks) {
      const take = Math.min(c.length, n - at);
      out.set(c.subarray(0, take), at);
      at += take;
      if (at === n) break;
    }
    return out;
  }

  private consume(n: number): void {
    this.offset += n;
    this.buffered -= n;
    let left = n;
    while (left > 0) {
      const c = this.chunks[0]!;
      if (c.length <= left) {
        this.chunks.shift();
        left -= c.length;
      } else {
        this.chunks[0] = c.subarray(left);
        left = 0;
      }
    }
  }

  push(chunk: Uint8Array): DecodedTraceItem[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const out: DecodedTraceItem[] = [];
    for (;;) {
      const item = this.header === undefined ? this.tryHeader() : this.tryRecord();
      if (item === undefined) return out;
      out.push(item);
    }
  }

  /** Call at end of input. Returns the truncated tail when tolerated; throws otherwise. */
  end(): { offset: number; bytes: number } | undefined {
    if (this.header === undefined) {
      this.fail("TRUNCATED", `trace ends inside the header (${this.buffered} bytes)`, this.offset);
    }
    if (this.buffered === 0) return undefined;
    if (this.options.tolerateTruncatedTail === true) return { offset: this.offset, bytes: this.buffered };
    return this.fail("TRUNCATED", `trace ends inside a record (${this.buffered} bytes left)`, this.offset);
  }

  private tryHeader(): DecodedTraceItem | undefined {
    const at = this.offset;
    if (this.buffered < 16) {
      // Reject a wrong magic as soon as its bytes arrive, so short garbage is not "truncated".
      const have = Math.min(this.buffered, TRACE_MAGIC.length);
      if (have > 0 && !bytesEqual(this.peek(have), TRACE_MAGIC.subarray(0, have))) {
        this.fail("BAD_MAGIC", "not a dirty trace (bad magic)", at);
      }
      return undefined;
    }
    const pre = new ByteReader(this.peek(16));
    if (!bytesEqual(pre.bytes(8), TRACE_MAGIC)) this.fail("BAD_MAGIC", "not a dirty trace (bad magic)", at);
    const major = pre.u16();
    const minor = pre.u16();
    if (major !== TRACE_VERSION.major) {
      this.fail("UNSUPPORTED_VERSION", `format version ${major}.${minor}, this reader knows ${major}.x`, at);
    }
    const length = pre.u32();
    if (length < HEADER_FIXED_BYTES + CRC_BYTES || length > MAX_RECORD_PAYLOAD) {
      this.fail("CORRUPT", `header length ${length} is impossible`, at);
    }
    if (this.buffered < length) return undefined;
    const bytes = this.peek(length);
    const stored = new DataView(bytes.buffer, bytes.byteOffset + length - CRC_BYTES, CRC_BYTES).getUint32(
      0,
      true,
    );
    if (crc32(bytes.subarray(0, length - CRC_BYTES)) !== stored) {
      this.fail("CHECKSUM_MISMATCH", "header checksum mismatch", at);
    }
    const r = new ByteReader(bytes.subarray(16, length - CRC_BYTES));
    try {
      const pageSize = r.u32();
      const pageCount = r.u32();
      const guestRamBytes = r.u64();
      const mode = r.u8();
      r.bytes(3);
      const metaLength = r.u32();
      const meta = r.bytes(metaLength);
      if (minor <= TRACE_VERSION.minor && r.remaining !== 0) {
        this.fail("CORRUPT", `${r.remaining} unexpected bytes after the header fields`, at);
      }
      if (mode > 1) this.fail("CORRUPT", `unknown tracking mode ${mode}`, at);
      if (pageSize === 0) this.fail("CORRUPT", "page size 0", at);
      if (guestRamBytes > BigInt(Number.MAX_SAFE_INTEGER))
        this.fail("CORRUPT", "guest RAM size too large", at);
      let metadata: unknown;
      try {
        metadata = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(meta));
      } catch (e) {
        throw new TraceFormatError("CORRUPT", "metadata is not UTF-8 JSON", {
          offset: at,
          cause: e,
          ...(this.options.path === undefined ? {} : { path: this.options.path }),
        });
      }
      if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) {
        this.fail("CORRUPT", "metadata is not a JSON object", at);
      }
      this.header = {
        version: { major, minor },
        pageSize,
        pageCount,
        guestRamBytes: Number(guestRamBytes),
        trackingMode: mode === 0 ? "sync" : "async",
        metadata: metadata as Record<string, unknown>,
      };
    } catch (e) {
      if (e instanceof OutOfData) this.fail("CORRUPT", "header fields overrun the header length", at);
      throw e;
    }
    this.consume(length);
    return { type: "header", header: this.header };
  }

  private tryRecord(): DecodedTraceItem | undefined {
    const at = this.offset;
    if (this.buffered < RECORD_PREFIX_BYTES) return undefined;
    const pre = new ByteReader(this.peek(RECORD_PREFIX_BYTES));
    if (!bytesEqual(pre.bytes(4), RECORD_MAGIC)) this.fail("BAD_MAGIC", "bad record magic", at);
    const payloadLength = pre.u32();
    if (payloadLength > MAX_RECORD_PAYLOAD)
      this.fail("CORRUPT", `record length ${payloadLength} is impossible`, at);
    const total = RECORD_PREFIX_BYTES + payloadLength + CRC_BYTES;
    if (this.buffered < total) return undefined;
    const bytes = this.peek(total);
    const stored = new DataView(bytes.buffer, bytes.byteOffset + total - CRC_BYTES, CRC_BYTES).getUint32(
      0,
      true,
    );
    if (crc32(bytes.subarray(0, total - CRC_BYTES)) !== stored) {
      this.fail("CHECKSUM_MISMATCH", "record checksum mismatch", at);
    }
    let record: DirtyTraceRecord;
    try {
      record = this.parsePayload(new ByteReader(bytes.subarray(RECORD_PREFIX_BYTES, total - CRC_BYTES)), at);
    } catch (e) {
      if (e instanceof OutOfData) this.fail("CORRUPT", "record fields overrun the record length", at);
      if (PageSetError.isInstance(e) && !TraceFormatError.isInstance(e)) {
        throw new TraceFormatError("CORRUPT", e.message, {
          offset: at,
          cause: e,
          ...(this.options.path === undefined ? {} : { path: this.options.path }),
        });
      }
      throw e;
    }
    this.consume(total);
    return { type: "record", record, offset: at };
  }

  private readPageSet(r: ByteReader, at: number): PageSet {
    const pageCount = this.header!.pageCount;
    const enc = r.u8();
    if (enc === SET_BITMAP) {
      // Copy: the payload view points into a chunk that the caller may reuse.
      return PageSet.fromBytes(pageCount, r.bytes((pageCount + 7) >>> 3), { copy: true });
    }
    if (enc !== SET_RANGES) this.fail("CORRUPT", `unknown page-set encoding ${enc}`, at);
    const n = r.varint();
    const s = new PageSet(pageCount);
    let prevEnd = 0;
    for (let i = 0; i < n; i++) {
      const gap = r.varint();
      const count = r.varint();
      // A zero gap after the first range would merge two runs: the writer never does that.
      if (gap < 0 || count <= 0 || (i > 0 && gap === 0)) this.fail("CORRUPT", "bad page range", at);
      const start = prevEnd + gap;
      if (start + count > pageCount) this.fail("CORRUPT", `page range beyond page ${pageCount}`, at);
      s.addRange(start, count);
      prevEnd = start + count;
    }
    return s;
  }

  private parsePayload(r: ByteReader, at: number): DirtyTraceRecord {
    const header = this.header!;
    const epoch = r.u32();
    r.u32(); // flags: none defined in 1.0
    const startNs = r.u64();
    const endNs = r.u64();
    if (endNs < startNs) this.fail("CORRUPT", `interval ends (${endNs}) before it starts (${startNs})`, at);
    if (epoch <= this.prevEpoch) this.fail("CORRUPT", `epoch ${epoch} after epoch ${this.prevEpoch}`, at);
    const dirty = this.readPageSet(r, at);
    const kind = r.u8();
    let order: FirstWriteOrder;
    if (kind === ORDER_NONE) {
      order = { kind: "none" };
    } else if (kind === ORDER_EXACT) {
      if (header.trackingMode !== "sync") this.fail("CORRUPT", "exact order in an async trace", at);
      const n = r.varint();
      if (n < 0 || n > r.remaining / 4) this.fail("CORRUPT", `order length ${n} overruns the record`, at);
      const pages = new Uint32Array(n);
      const seen = new PageSet(header.pageCount);
      for (let i = 0; i < n; i++) {
        const p = r.u32();
        if (!dirty.has(p) || seen.has(p))
          this.fail("CORRUPT", `ordered page ${p} is repeated or not dirty`, at);
        seen.add(p);
        pages[i] = p;
      }
      const offsetsNs = new Float64Array(n);
      let t = 0;
      for (let i = 0; i < n; i++) {
        const d = r.varint();
        if (d < 0 || t + d > Number.MAX_SAFE_INTEGER) this.fail("CORRUPT", "bad first-write offset", at);
        t += d;
        offsetsNs[i] = t;
      }
      order = { kind: "exact", pages, offsetsNs };
    } else if (kind === ORDER_CLASSES) {
      if (header.trackingMode !== "async") this.fail("CORRUPT", "write classes in a sync trace", at);
      const n = r.varint();
      if (n < 0 || n > r.remaining) this.fail("CORRUPT", `class count ${n} overruns the record`, at);
      const classes: WriteClass[] = [];
      let prevT = -1;
      let cumulative = new PageSet(header.pageCount);
      for (let i = 0; i < n; i++) {
        const thresholdNs = r.varint();
        if (thresholdNs <= prevT) this.fail("CORRUPT", "class thresholds do not increase", at);
        const added = this.readPageSet(r, at);
        if (!added.isSubsetOf(dirty) || added.intersectionCount(cumulative) !== 0) {
          this.fail("CORRUPT", `class ${thresholdNs} ns has pages not dirty or already classed`, at);
        }
        cumulative = cumulative.or(added);
        classes.push({ thresholdNs, pages: cumulative });
        prevT = thresholdNs;
      }
      order = { kind: "classes", classes };
    } else {
      return this.fail("CORRUPT", `unknown first-write order kind ${kind}`, at);
    }
    if (header.version.minor <= TRACE_VERSION.minor && r.remaining !== 0) {
      this.fail("CORRUPT", `${r.remaining} unexpected bytes at the end of the record`, at);
    }
    this.prevEpoch = epoch;
    return { epoch, startNs, endNs, dirty, order };
  }
}

/** Decodes a whole trace held in memory. */
export function decodeDirtyTrace(bytes: Uint8Array, options: DecoderOptions = {}): DirtyTrace {
  const decoder = new DirtyTraceDecoder(options);
  const items = decoder.push(bytes);
  const tail = decoder.end();
  let header: DecodedTraceHeader | undefined;
  const records: DirtyTraceRecord[] = [];
  for (const item of items) {
    if (item.type === "header") header = item.header;
    else records.push(item.record);
  }
  // end() has thrown if no header was decoded.
  const trace: DirtyTrace = { header: header!, records };
  if (tail !== undefined) trace.truncatedTail = tail;
  return trace;
}
