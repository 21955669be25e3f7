/**
 * `npm run bench -w @vpc/dirty-log`: costs of the agent in both modes, measured on the harness
 * (no QEMU). Prints one table; every ratio compares runs made in this same process.
 */
import { PageSet } from "@vpc/pageset";
import type { AttachOptions } from "./client.js";
import { Harness } from "./internal/harness.js";
import type { TrackingMode } from "./protocol.js";

const MODES: TrackingMode[] = ["sync", "async"];
const FAULTS = Number(process.env.VPC_BENCH_FAULTS ?? 10_000);
const REPEAT = 5;

const us = (ns: number) => (ns / 1000).toFixed(2);
const ms = (ns: number) => (ns / 1e6).toFixed(2);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

function rows(title: string, lines: [string, ...string[]][]): void {
  console.log(`\n## ${title}`);
  for (const l of lines) console.log(l.map((c, i) => (i === 0 ? c.padEnd(44) : c.padStart(15))).join(""));
}

function randomSet(pages: number, n: number, seed: number): PageSet {
  const s = new PageSet(pages);
  let x = seed;
  let count = 0;
  while (count < n) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    if (!s.has(x % pages)) count++;
    s.add(x % pages);
  }
  return s;
}

async function withHarness<T>(pages: number, fn: (h: Harness) => Promise<T>): Promise<T> {
  const h = await Harness.start(pages);
  try {
    await h.cmd(`write 0 0-${pages - 1}`); // populated, like a booted guest
    return await fn(h);
  } finally {
    await h.close();
  }
}

async function attach(h: Harness, mode: TrackingMode, extra: Partial<AttachOptions> = {}) {
  return h.client.attach({ memPath: h.ramPath, mode, stagingSlots: 1024, ...extra });
}

async function faultCosts(): Promise<void> {
  const out: [string, ...string[]][] = [["", "p50 µs", "p99 µs", "handler p50", "handler p99"]];
  await withHarness(65536, async (h) => {
    const [, p50, p99] = (await h.cmd(`bench ${FAULTS} 1`)).map(Number);
    out.push(["plain write, tracking off", us(p50!), us(p99!), "-", "-"]);
    for (const mode of MODES) {
      await attach(h, mode, { stagingSlots: FAULTS });
      await h.client.arm();
      const [, t50, t99] = (await h.cmd(`bench ${FAULTS} 2`)).map(Number);
      let st = await h.client.stats();
      out.push([
        `${mode}: first write (tracking fault)`,
        us(t50!),
        us(t99!),
        mode === "sync" ? us(st.trackingFaults.p50Ns) : "kernel",
        mode === "sync" ? us(st.trackingFaults.p99Ns) : "kernel",
      ]);
      await h.client.harvest();
      await h.client.protect(new PageSet(65536).fill());
      const [, c50, c99] = (await h.cmd(`bench ${FAULTS} 3`)).map(Number);
      st = await h.client.stats();
      out.push([
        `${mode}: write to protected page (COW)`,
        us(c50!),
        us(c99!),
        us(st.cowFaults.p50Ns),
        us(st.cowFaults.p99Ns),
      ]);
      await h.client.detach();
    }
  });
  rows(`fault cost, ${FAULTS} faults on random pages of 256 MiB (writer-side and handler-side)`, out);
}

async function scanCosts(): Promise<void> {
  const out: [string, ...string[]][] = [["", "arm ms", "harvest ms", "peek ms"]];
  for (const pages of [65536, 262144]) {
    await withHarness(pages, async (h) => {
      for (const mode of MODES) {
        const arm: number[] = [];
        const harvest: number[] = [];
        const peek: number[] = [];
        await attach(h, mode);
        for (let i = 0; i < REPEAT; i++) {
          arm.push((await h.client.arm()).ns);
          await h.cmd(`loop ${pages / 100} ${i + 1} ${pages}`);
          peek.push((await h.client.peek()).ns);
          harvest.push((await h.client.harvest()).ns);
        }
        await h.client.detach();
        out.push([
          `${mode}, ${(pages * 4) >> 10} MiB, 1% written`,
          ms(median(arm)),
          ms(median(harvest)),
          ms(median(peek)),
        ]);
      }
    });
  }
  rows(`arm / harvest / peek (median of ${REPEAT})`, out);
}

async function protectCosts(): Promise<void> {
  const pages = 262144;
  const out: [string, ...string[]][] = [["", "1k pages ms", "10k pages ms", "100k pages ms", "µs/page"]];
  await withHarness(pages, async (h) => {
    for (const mode of MODES) {
      const times: number[] = [];
      for (const n of [1000, 10000, 100000]) {
        await attach(h, mode);
        await h.client.arm();
        await h.client.harvest();
        times.push((await h.client.protect(randomSet(pages, n, n))).ns);
        await h.client.detach();
      }
      out.push([
        `${mode}: protect random pages of 1 GiB`,
        ms(times[0]!),
        ms(times[1]!),
        ms(times[2]!),
        us(times[2]! / 100000),
      ]);
    }
  });
  rows("pause time added by protect(set) (after harvest)", out);
}

async function slowdown(): Promise<void> {
  const pages = 65536;
  const span = 16384;
  const writes = 2_000_000;
  const intervals = 5;
  const out: [string, ...string[]][] = [["", "ms/interval", "× off"]];
  await withHarness(pages, async (h) => {
    const loop = async (i: number) => Number((await h.cmd(`loop ${writes} ${i + 1} ${span}`))[0]);
    let off = 0;
    for (let i = 0; i < intervals; i++) off += await loop(i);
    out.push(["tracking off", ms(off / intervals), "1.00"]);
    for (const mode of MODES) {
      await attach(h, mode);
      await h.client.arm();
      let on = 0;
      for (let i = 0; i < intervals; i++) {
        on += await loop(i);
        await h.client.harvest();
      }
      await h.client.detach();
      out.push([`${mode} tracking on`, ms(on / intervals), (on / off).toFixed(2)]);
    }
  });
  rows(
    `memory-writing loop: ${writes / 1e6}M random 8-byte writes over ${(span * 4) >> 10} MiB per interval, harvest between, ${intervals} intervals`,
    out,
  );
}

console.log("@vpc/dirty-log benchmark (harness, no QEMU); absolute times vary with machine load");
await faultCosts();
await scanCosts();
await protectCosts();
await slowdown();
