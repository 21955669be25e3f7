// Round-trip time of `query-status` against a real QEMU, one at a time and with several in flight.
// Runs the built package (npm run build first; `npm run bench -w qemu-qmp-client` via turbo does).
//   QMP_BENCH_N       calls per run (default 1000)
//   QMP_BENCH_INFLIGHT commands in flight in the concurrent run (default 16)
import { performance } from "node:perf_hooks";
import { QmpClient } from "../dist/index.js";
import { startQemuForQmp } from "../dist/testing/index.js";

const n = Number(process.env.QMP_BENCH_N ?? 1000);
const inflight = Number(process.env.QMP_BENCH_INFLIGHT ?? 16);

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function summary(label, samples, wallMs) {
  const sorted = [...samples].sort((a, b) => a - b);
  const fmt = (ms) => `${(ms * 1000).toFixed(0)} µs`;
  const rate = ((samples.length / wallMs) * 1000).toFixed(0);
  console.log(
    `${label.padEnd(24)} n=${samples.length}  median ${fmt(quantile(sorted, 0.5))}  p99 ${fmt(quantile(sorted, 0.99))}  ${rate} calls/s`,
  );
}

/** Each sample: time from sending one command to its reply, with `width` commands kept in flight. */
async function run(qmp, width) {
  const samples = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      const t0 = performance.now();
      await qmp.queryStatus();
      samples.push(performance.now() - t0);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: width }, worker));
  return { samples, wallMs: performance.now() - t0 };
}

const vm = await startQemuForQmp();
let qmp;
try {
  qmp = await QmpClient.connect(vm.qmp, { connectRetryMs: 10 });
  const v = qmp.greeting.version.qemu;
  console.log(
    `QEMU ${v.major}.${v.minor}.${v.micro} (${qmp.greeting.version.package}), unix socket, TCG, vCPUs stopped`,
  );
  await run(qmp, 1); // warm-up: JIT, socket buffers
  const serial = await run(qmp, 1);
  summary("query-status, 1 at a time", serial.samples, serial.wallMs);
  const parallel = await run(qmp, inflight);
  summary(`query-status, ${inflight} in flight`, parallel.samples, parallel.wallMs);
} finally {
  await qmp?.close();
  await vm.dispose();
}
