#!/usr/bin/env node
// Single-VM comparison of the checkpoint engines (docs/architecture.md §5) on one NPB kernel.
// Runs built dist code: `npm run build` first, and `make images` for the guest with NPB.
//
//   node scripts/single-vm-compare.mjs --kernel cg --class W --reps 4 --interval 1000 \
//     [--engines "stop-copy cow vpc precopy qemu-snapshot qemu-stop"] [--mode async|sync] [--json out.json]
//
// For each engine (and once without checkpointing) it boots a fresh VM with the dirty-log agent,
// runs the kernel --reps times back to back inside it (one SSH command, timed on the host), and
// checkpoints every --interval ms meanwhile. Prints a table and the vpc ratios.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  CheckpointLoop,
  createEngine,
  loadGuestImage,
  parseEngineSpec,
  startVmWithAgent,
} from "../packages/controller/dist/index.js";
import { CheckpointStore } from "../packages/storage/dist/index.js";

const { values: o } = parseArgs({
  options: {
    kernel: { type: "string", default: "cg" },
    class: { type: "string", default: "W" },
    reps: { type: "string", default: "4" },
    interval: { type: "string", default: "1000" },
    mem: { type: "string", default: "256" },
    mode: { type: "string" },
    engines: { type: "string", default: "stop-copy cow vpc precopy qemu-snapshot qemu-stop" },
    json: { type: "string" },
  },
});
const engines = o.engines.split(/\s+/).filter(Boolean);
const image = await loadGuestImage();
if (!image.npb.includes(o.kernel)) throw new Error(`guest image has no NPB ${o.kernel} (run make images)`);
const cmd = `cd /tmp && for i in $(seq ${Number(o.reps)}); do mpiexec -n 1 /opt/npb/bin/${o.kernel} ${o.class} || exit 1; done 2>&1`;

async function runOne(spec) {
  const work = await mkdtemp(join(tmpdir(), "vpc-compare-"));
  const live = await startVmWithAgent(
    { name: "cmp", image, memMiB: Number(o.mem) },
    o.mode ? { mode: o.mode } : {},
  );
  let loop;
  let store;
  let engine;
  try {
    if (spec !== "none") {
      store = await CheckpointStore.open(join(work, "store"), { create: true });
      engine = createEngine(parseEngineSpec(spec), { vm: live.vm, store, agent: live.agent });
      loop = new CheckpointLoop({ vm: live.vm, engine, intervalMs: Number(o.interval) }).start();
    }
    const t0 = performance.now();
    const out = await live.vm.run(cmd, { timeoutMs: 1_800_000 });
    const wallS = (performance.now() - t0) / 1000;
    const result = loop ? await loop.stop() : undefined;
    const verified = (out.match(/Verification\s*=\s*SUCCESSFUL/g) ?? []).length;
    return {
      spec,
      wallS,
      verified,
      mode: live.agent.attachment?.mode,
      summary: result?.summary,
      records: result?.records,
    };
  } finally {
    if (loop) await loop.stop();
    await engine?.close();
    await store?.close();
    await live.close();
    await rm(work, { recursive: true, force: true });
  }
}

const results = [];
for (const spec of ["none", ...engines]) {
  process.stderr.write(`running ${spec} ...\n`);
  results.push(await runOne(spec));
}
const base = results[0].wallS;
const f = (v, d = 2) => (v === null || v === undefined || Number.isNaN(v) ? "-" : v.toFixed(d));
const rows = [
  [
    "engine",
    "mode",
    "ckpts",
    "failed",
    "downtime med ms",
    "downtime p95 ms",
    "pause med ms",
    "COW faults/ckpt",
    "mem overhead",
    "run-time overhead",
    "verified",
  ],
];
for (const r of results) {
  const s = r.summary;
  rows.push([
    r.spec,
    r.spec.startsWith("qemu") ? "-" : r.spec === "none" ? "-" : r.mode,
    s ? String(s.checkpoints) : "-",
    s ? String(s.failed) : "-",
    f(s?.soloDowntimeMs.median),
    f(s?.soloDowntimeMs.p95),
    f(s?.pauseMs.median),
    f(s?.cowFaults.median, 0),
    s ? `${f((s.memoryOverhead.max ?? 0) * 100, 1)}%` : "-",
    `${f((r.wallS / base - 1) * 100, 1)}%`,
    `${r.verified}/${o.reps}`,
  ]);
}
const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
const line = (row) => `| ${row.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
console.log(
  `NPB ${o.kernel.toUpperCase()}.${o.class} x${o.reps}, ${o.mem} MiB guest, interval ${o.interval} ms; no-checkpoint wall ${f(base, 1)} s`,
);
console.log(line(rows[0]));
console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
for (const row of rows.slice(1)) console.log(line(row));
const med = (spec) => results.find((r) => r.spec.startsWith(spec))?.summary?.soloDowntimeMs.median;
const vpc = med("vpc");
for (const other of ["stop-copy", "cow", "qemu-snapshot"]) {
  const m = med(other);
  console.log(`solo VM downtime (median) vpc ÷ ${other}: ${vpc && m ? f(vpc / m, 3) : "-"}`);
}
if (o.json) {
  const { writeFile } = await import("node:fs/promises");
  await writeFile(o.json, JSON.stringify(results, null, 2));
}
