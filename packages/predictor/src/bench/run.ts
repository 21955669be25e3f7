/**
 * Time to update the history with one interval and compute P, per strategy, for 64 Ki, 256 Ki and
 * 1 Mi pages (256 MiB, 1 GiB and 4 GiB guests). Workload: hot set of pageCount/16 pages written
 * early + pageCount/64 noise pages, exact first-write order (about 8% of pages dirty per interval).
 * Run: npm run bench -w @vpc/predictor   (BENCH_STEPS=n to change the number of timed steps)
 */
import { PageHistory } from "../history.js";
import { DEFAULT_STRATEGY_SPECS, parseStrategy } from "../registry.js";
import { generateTrace } from "../synthetic.js";

const STEPS = Number(process.env.BENCH_STEPS ?? 30);
const SIZES = [64 * 1024, 256 * 1024, 1024 * 1024];
const SPECS = [...DEFAULT_STRATEGY_SPECS, "k-of-n:k=4,n=8", "recency:n=16", "early-writers:windowMs=100,m=8"];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

const rows = new Map<string, string[]>();
const put = (name: string, v: string) => rows.set(name, [...(rows.get(name) ?? []), v]);
for (const pageCount of SIZES) {
  const trace = generateTrace({ workload: "hot-set", pageCount, intervals: 16, seed: 1 });
  const recs = trace.records;
  // History update alone: copying one interval into the ring (depth 16).
  {
    const h = new PageHistory(pageCount, 16);
    const t: number[] = [];
    for (let i = 0; i < STEPS + 16; i++) {
      const t0 = process.hrtime.bigint();
      h.push(recs[i % recs.length]!);
      if (i >= 16) t.push(ms(t0));
    }
    put("history.push", median(t).toFixed(3));
  }
  for (const spec of SPECS) {
    const s = parseStrategy(spec);
    const h = new PageHistory(pageCount, s.depth);
    const t: number[] = [];
    let size = 0;
    for (let i = 0; i < STEPS + s.depth; i++) {
      const t0 = process.hrtime.bigint();
      h.push(recs[i % recs.length]!);
      size = s.predict(h).count();
      if (i >= s.depth) t.push(ms(t0));
    }
    put(spec, `${median(t).toFixed(3)} (${size})`);
  }
}

console.log(`push + predict per interval, median of ${STEPS} steps, ms (|P| in parentheses)`);
const width = Math.max(...[...rows.keys()].map((k) => k.length)) + 2;
console.log(["strategy".padEnd(width), ...SIZES.map((n) => `${n / 1024} Ki pages`.padStart(20))].join(""));
for (const [name, vals] of rows)
  console.log([name.padEnd(width), ...vals.map((v) => v.padStart(20))].join(""));
