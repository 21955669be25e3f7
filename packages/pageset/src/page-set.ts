import { PageSetError } from "./errors.js";

/** A run of consecutive pages: pages start, start+1, …, start+count-1. */
export interface PageRange {
  start: number;
  count: number;
}

export interface FromBytesOptions {
  /**
   * Always copy the bytes, even when they could be wrapped. Default false: the set shares memory
   * with `bytes` whenever `bytes` is 4-byte aligned, long enough, and the host is little-endian.
   */
  copy?: boolean;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Number of set bits in a 32-bit word (SWAR popcount). */
function popcount32(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  v = (v + (v >>> 4)) & 0x0f0f0f0f;
  return Math.imul(v, 0x01010101) >>> 24;
}

/** Index (0..31) of the lowest set bit of a non-zero word. */
function lowestBit(w: number): number {
  return 31 - Math.clz32(w & -w);
}

function wordCountFor(pageCount: number): number {
  return (pageCount + 31) >>> 5;
}

/** Mask of the valid bits in the last word (all ones when pageCount is a multiple of 32). */
function lastWordMask(pageCount: number): number {
  const rem = pageCount & 31;
  return rem === 0 ? 0xffffffff : (1 << rem) - 1;
}

function checkPageCount(pageCount: number): void {
  if (!Number.isInteger(pageCount) || pageCount < 0 || pageCount > 0xffffffff) {
    throw new PageSetError("INVALID_ARGUMENT", `pageCount must be an integer in [0, 2^32), got ${pageCount}`);
  }
}

/**
 * A set of guest page numbers in [0, pageCount), stored as a bitset: page p is bit (p & 31) of
 * word (p >>> 5). On a little-endian host that is bit (p & 7) of byte (p >>> 3), the layout of the
 * dirty-log agent's shared bitmap, so `fromBytes` can wrap that memory without copying.
 *
 * Invariant: bits at positions >= pageCount in the last word are always zero, so `count()`,
 * iteration and comparisons need no masking.
 */
export class PageSet implements Iterable<number> {
  readonly pageCount: number;
  readonly words: Uint32Array;

  constructor(pageCount: number, words?: Uint32Array) {
    checkPageCount(pageCount);
    this.pageCount = pageCount;
    const n = wordCountFor(pageCount);
    if (words === undefined) {
      this.words = new Uint32Array(n);
    } else {
      if (words.length !== n) {
        throw new PageSetError(
          "BAD_BITMAP",
          `a set of ${pageCount} pages needs ${n} words, got ${words.length}`,
        );
      }
      if (n > 0 && (words[n - 1]! & ~lastWordMask(pageCount)) !== 0) {
        throw new PageSetError("BAD_BITMAP", `bitmap has bits set at or beyond page ${pageCount}`);
      }
      this.words = words;
    }
  }

  static fromPages(pageCount: number, pages: Iterable<number>): PageSet {
    const s = new PageSet(pageCount);
    for (const p of pages) s.add(p);
    return s;
  }

  static fromRanges(pageCount: number, ranges: Iterable<PageRange>): PageSet {
    const s = new PageSet(pageCount);
    for (const r of ranges) s.addRange(r.start, r.count);
    return s;
  }

  /**
   * A set over raw bitmap bytes (bit p & 7 of byte p >>> 3). `bytes` must hold at least
   * ceil(pageCount / 8) bytes; extra bytes are ignored. When `bytes` is 4-byte aligned, holds
   * whole words and the host is little-endian, the set wraps the same memory (writes through
   * either are visible in both); otherwise the bits are copied. Bits at or beyond pageCount must
   * be zero.
   */
  static fromBytes(pageCount: number, bytes: Uint8Array, options: FromBytesOptions = {}): PageSet {
    checkPageCount(pageCount);
    const needBytes = (pageCount + 7) >>> 3;
    if (bytes.byteLength < needBytes) {
      throw new PageSetError(
        "BAD_BITMAP",
        `a bitmap of ${pageCount} pages needs ${needBytes} bytes, got ${bytes.byteLength}`,
      );
    }
    const n = wordCountFor(pageCount);
    if (options.copy !== true && LITTLE_ENDIAN && bytes.byteOffset % 4 === 0 && bytes.byteLength >= n * 4) {
      return new PageSet(pageCount, new Uint32Array(bytes.buffer, bytes.byteOffset, n));
    }
    const words = new Uint32Array(n);
    for (let i = 0; i < needBytes; i++) {
      words[i >>> 2]! |= bytes[i]! << ((i & 3) << 3);
    }
    if (n > 0 && (words[n - 1]! & ~lastWordMask(pageCount)) !== 0) {
      // Bits of the partial last byte beyond pageCount: reject rather than silently mask, since
      // they mean the producer and the reader disagree on pageCount.
      throw new PageSetError("BAD_BITMAP", `bitmap has bits set at or beyond page ${pageCount}`);
    }
    return new PageSet(pageCount, words);
  }

  /** The bitmap as bytes in the agent's layout (a copy, ceil(pageCount / 8) bytes long). */
  toBytes(): Uint8Array {
    const out = new Uint8Array((this.pageCount + 7) >>> 3);
    const w = this.words;
    for (let i = 0; i < out.length; i++) out[i] = w[i >>> 2]! >>> ((i & 3) << 3);
    return out;
  }

  private checkPage(p: number): void {
    if (!(Number.isInteger(p) && p >= 0 && p < this.pageCount)) {
      throw new PageSetError("PAGE_OUT_OF_RANGE", `page ${p} is outside [0, ${this.pageCount})`);
    }
  }

  private checkSame(other: PageSet): void {
    if (other.pageCount !== this.pageCount) {
      throw new PageSetError(
        "PAGE_COUNT_MISMATCH",
        `page sets of ${this.pageCount} and ${other.pageCount} pages cannot be combined`,
      );
    }
  }

  has(p: number): boolean {
    if (!(p >= 0 && p < this.pageCount)) return false;
    return ((this.words[p >>> 5]! >>> (p & 31)) & 1) === 1;
  }

  add(p: number): this {
    this.checkPage(p);
    this.words[p >>> 5]! |= 1 << (p & 31);
    return this;
  }

  delete(p: number): boolean {
    this.checkPage(p);
    const i = p >>> 5;
    const bit = 1 << (p & 31);
    const had = (this.words[i]! & bit) !== 0;
    this.words[i]! &= ~bit;
    return had;
  }

  /** Adds pages start .. start+count-1, a word at a time. */
  addRange(start: number, count: number): this {
    if (!Number.isInteger(count) || count < 0) {
      throw new PageSetError("INVALID_ARGUMENT", `range count must be a non-negative integer, got ${count}`);
    }
    if (count === 0) return this;
    this.checkPage(start);
    this.checkPage(start + count - 1);
    const end = start + count; // exclusive
    const w = this.words;
    const first = start >>> 5;
    const last = (end - 1) >>> 5;
    const headMask = (0xffffffff << (start & 31)) >>> 0;
    const tailMask = (end & 31) === 0 ? 0xffffffff : (1 << (end & 31)) - 1;
    if (first === last) {
      w[first]! |= headMask & tailMask;
      return this;
    }
    w[first]! |= headMask;
    w.fill(0xffffffff, first + 1, last);
    w[last]! |= tailMask;
    return this;
  }

  clear(): this {
    this.words.fill(0);
    return this;
  }

  /** Adds every page in [0, pageCount). */
  fill(): this {
    const n = this.words.length;
    if (n === 0) return this;
    this.words.fill(0xffffffff);
    this.words[n - 1] = lastWordMask(this.pageCount);
    return this;
  }

  /** Number of pages in the set. */
  count(): number {
    const w = this.words;
    let c = 0;
    for (let i = 0; i < w.length; i++) {
      const x = w[i]!;
      if (x !== 0) c += popcount32(x);
    }
    return c;
  }

  /** |this ∩ other| without allocating. */
  intersectionCount(other: PageSet): number {
    this.checkSame(other);
    const a = this.words;
    const b = other.words;
    let c = 0;
    for (let i = 0; i < a.length; i++) {
      const x = a[i]! & b[i]!;
      if (x !== 0) c += popcount32(x);
    }
    return c;
  }

  isEmpty(): boolean {
    const w = this.words;
    for (let i = 0; i < w.length; i++) if (w[i] !== 0) return false;
    return true;
  }

  equals(other: PageSet): boolean {
    if (other.pageCount !== this.pageCount) return false;
    const a = this.words;
    const b = other.words;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  /** True when every page of this set is in `other`. */
  isSubsetOf(other: PageSet): boolean {
    this.checkSame(other);
    const a = this.words;
    const b = other.words;
    for (let i = 0; i < a.length; i++) if ((a[i]! & ~b[i]!) !== 0) return false;
    return true;
  }

  /** A copy with its own memory (also when this set wraps a shared bitmap). */
  clone(): PageSet {
    return new PageSet(this.pageCount, this.words.slice());
  }

  /** Replaces this set's contents with `other`'s. */
  copyFrom(other: PageSet): this {
    this.checkSame(other);
    this.words.set(other.words);
    return this;
  }

  orInPlace(other: PageSet): this {
    this.checkSame(other);
    const a = this.words;
    const b = other.words;
    for (let i = 0; i < a.length; i++) a[i]! |= b[i]!;
    return this;
  }

  andInPlace(other: PageSet): this {
    this.checkSame(other);
    const a = this.words;
    const b = other.words;
    for (let i = 0; i < a.length; i++) a[i]! &= b[i]!;
    return this;
  }

  andNotInPlace(other: PageSet): this {
    this.checkSame(other);
    const a = this.words;
    const b = other.words;
    for (let i = 0; i < a.length; i++) a[i]! &= ~b[i]!;
    return this;
  }

  xorInPlace(other: PageSet): this {
    this.checkSame(other);
    const a = this.words;
    const b = other.words;
    for (let i = 0; i < a.length; i++) a[i]! ^= b[i]!;
    return this;
  }

  /** this ∪ other, as a new set. */
  or(other: PageSet): PageSet {
    return this.clone().orInPlace(other);
  }

  /** this ∩ other, as a new set. */
  and(other: PageSet): PageSet {
    return this.clone().andInPlace(other);
  }

  /** this ∖ other, as a new set. */
  andNot(other: PageSet): PageSet {
    return this.clone().andNotInPlace(other);
  }

  /** Symmetric difference, as a new set. */
  xor(other: PageSet): PageSet {
    return this.clone().xorInPlace(other);
  }

  /** Calls fn for every page in ascending order. */
  forEach(fn: (page: number) => void): void {
    const w = this.words;
    for (let i = 0; i < w.length; i++) {
      let x = w[i]!;
      const base = i << 5;
      while (x !== 0) {
        fn(base + lowestBit(x));
        x &= x - 1;
      }
    }
  }

  *[Symbol.iterator](): IterableIterator<number> {
    const w = this.words;
    for (let i = 0; i < w.length; i++) {
      let x = w[i]!;
      const base = i * 32;
      while (x !== 0) {
        yield base + lowestBit(x);
        x &= x - 1;
      }
    }
  }

  /** The pages in ascending order. */
  toArray(): Uint32Array {
    const out = new Uint32Array(this.count());
    const w = this.words;
    let k = 0;
    for (let i = 0; i < w.length; i++) {
      let x = w[i]!;
      const base = i * 32;
      while (x !== 0) {
        out[k++] = base + lowestBit(x);
        x &= x - 1;
      }
    }
    return out;
  }

  /** Maximal runs of consecutive pages, ascending. Whole-word runs are skipped a word at a time. */
  toRanges(): PageRange[] {
    const out: PageRange[] = [];
    const w = this.words;
    const n = w.length;
    let runStart = -1;
    for (let i = 0; i < n; i++) {
      const x = w[i]!;
      const base = i * 32;
      if (x === 0) {
        if (runStart >= 0) {
          out.push({ start: runStart, count: base - runStart });
          runStart = -1;
        }
        continue;
      }
      if (x === 0xffffffff) {
        if (runStart < 0) runStart = base;
        continue;
      }
      for (let b = 0; b < 32; ) {
        const inSet = ((x >>> b) & 1) === 1;
        // Length of the run of equal bits starting at b, by counting trailing zeros of the
        // (possibly inverted) shifted word.
        const y = (inSet ? ~x : x) >>> b;
        const len = y === 0 ? 32 - b : Math.min(32 - b, lowestBit(y));
        if (inSet) {
          if (runStart < 0) runStart = base + b;
        } else if (runStart >= 0) {
          out.push({ start: runStart, count: base + b - runStart });
          runStart = -1;
        }
        b += len;
      }
    }
    if (runStart >= 0) out.push({ start: runStart, count: n * 32 - runStart });
    return out;
  }
}
