/**
 * Prints the time of each PageSet operation for 64 Ki, 256 Ki and 1 Mi pages (256 MiB, 1 GiB and
 * 4 GiB guests), with about a quarter of the pages set in a mix of runs and scattered pages.
 * Run: npm run bench -w @vpc/pageset   (BENCH_REPS=n to change the repetitions)
 */
import { PageSet } from "../page-set.js";
import { decodeDirtyTrace, encodeDirtyTrace } from "../trace-codec.js";

const REPS = Number(process.env.BENCH_REPS ?? 20);

/** Deterministic xorshift32 so runs are comparable. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

function makeSet(pageCount: number, seed: number): PageSet {
  const r = rng(seed);
  const s = new PageSet(pageCount);
  // Half of the dirty pages in runs of 1..64 pages, half scattered.
  while (s.count() < pageCount / 8) s.addRange(Math.floor(r() * (pageCount - 64)), 1 + Math.floor(r() * 64));
  for (let i = 0; i < pageCount / 8; i++) s.add(Math.floor(r() * pageCount));
  return s;
}

/** Median wall time of fn over REPS runs, in ms. */
function time(fn: () => unknown): number {
  const t: number[] = [];
  fn();
  for (let i = 0; i < REPS; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)]!;
}

const sizes = [64 * 1024, 256 * 1024, 1024 * 1024];
const rows: Array<[string, ...number[]]> = [];
const sets = sizes.map((n) => [makeSet(n, 1), makeSet(n, 2)] as const);
const ops: Array<[string, (a: PageSet, b: PageSet) => unknown]> = [
  ["count", (a) => a.count()],
  ["or (new set)", (a, b) => a.or(b)],
  ["andNotInPlace", (a, b) => a.clone().andNotInPlace(b)],
  ["intersectionCount", (a, b) => a.intersectionCount(b)],
  ["equals", (a) => a.equals(a)],
  ["toArray", (a) => a.toArray()],
  [
    "forEach",
    (a) => {
      let x = 0;
      a.forEach((p) => {
        x += p;
      });
      return x;
    },
  ],
  [
    "iterator",
    (a) => {
      let x = 0;
      for (const p of a) x += p;
      return x;
    },
  ],
  ["toRanges", (a) => a.toRanges()],
  ["fromRanges", (a) => PageSet.fromRanges(a.pageCount, a.toRanges())],
  ["fromBytes (wrap)", (a) => PageSet.fromBytes(a.pageCount, new Uint8Array(a.words.buffer))],
  ["fromBytes (copy)", (a) => PageSet.fromBytes(a.pageCount, new Uint8Array(a.words.buffer), { copy: true })],
];
for (const [name, fn] of ops) rows.push([name, ...sets.map(([a, b]) => time(() => fn(a, b)))]);
const traceHeader = (n: number) => ({
  pageSize: 4096,
  pageCount: n,
  guestRamBytes: 4096 * n,
  trackingMode: "sync" as const,
  metadata: {},
});
rows.push([
  "trace record encode",
  ...sets.map(([a]) =>
    time(() =>
      encodeDirtyTrace(traceHeader(a.pageCount), [
        { epoch: 1, startNs: 0n, endNs: 1n, dirty: a, order: { kind: "none" } },
      ]),
    ),
  ),
]);
rows.push([
  "trace record decode",
  ...sets.map(([a]) => {
    const bytes = encodeDirtyTrace(traceHeader(a.pageCount), [
      { epoch: 1, startNs: 0n, endNs: 1n, dirty: a, order: { kind: "none" } },
    ]);
    return time(() => decodeDirtyTrace(bytes));
  }),
]);

console.log(`PageSet operations, median of ${REPS} runs, ms (about 1/4 of the pages set)`);
console.log(["operation".padEnd(22), ...sizes.map((n) => `${n / 1024} Ki pages`.padStart(14))].join(""));
for (const [name, ...ms] of rows) {
  console.log([name.padEnd(22), ...ms.map((m) => m.toFixed(3).padStart(14))].join(""));
}
