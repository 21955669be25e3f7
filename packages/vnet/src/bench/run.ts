/**
 * Throughput of the switch against a plain relay, in one process and one run (so the ratios hold
 * on whatever machine runs it). A sender writes framed Ethernet frames as fast as backpressure
 * allows into a unix socket; a sink counts the bytes that come out of the other end:
 *   relay   a minimal unix-socket-to-unix-socket copier (socket.pipe), the baseline;
 *   switch  one VnetSwitch, sender on port a, sink on port b (unicast, MAC learned);
 *   tunnel  two VnetSwitches joined by an authenticated TCP tunnel on loopback.
 * Each measurement runs BENCH_REPEAT times (default 3) and the median is printed, because other
 * processes share the CPU. Environment: BENCH_FRAMES_SMALL (default 1000000), BENCH_FRAMES_LARGE
 * (default 200000), BENCH_REPEAT.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeFrames } from "../frame-codec.js";
import { VnetSwitch } from "../switch.js";
import { BROADCAST, ethFrame, vmMac } from "../testing/frames.js";

const SMALL = Number(process.env.BENCH_FRAMES_SMALL ?? 1_000_000);
const LARGE = Number(process.env.BENCH_FRAMES_LARGE ?? 200_000);
const REPEAT = Number(process.env.BENCH_REPEAT ?? 3);
const A = vmMac(1);
const B = vmMac(2);

interface Endpoints {
  /** Path the sender connects to, and the path the sink connects to. */
  inPath: string;
  outPath: string;
  /** Called once the sink is connected, before timing (e.g. to let the switch learn its MAC). */
  warm?: (sink: Socket) => Promise<void>;
  close: () => Promise<void>;
}

function connect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ path });
    s.once("error", reject);
    s.once("connect", () => {
      s.off("error", reject);
      resolve(s);
    });
  });
}

function listening(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
}

/** A copier: whatever arrives on inPath goes to the connection on outPath. */
async function relay(dir: string): Promise<Endpoints> {
  const inPath = join(dir, "relay-in.sock");
  const outPath = join(dir, "relay-out.sock");
  let out: Socket | undefined;
  const sockets = new Set<Socket>();
  const outServer = createServer((s) => {
    sockets.add(s);
    out = s;
  });
  const inServer = createServer((s) => {
    sockets.add(s);
    if (out === undefined) throw new Error("sink must connect first");
    s.pipe(out);
  });
  await listening(outServer, outPath);
  await listening(inServer, inPath);
  return {
    inPath,
    outPath,
    close: async () => {
      for (const s of sockets) s.destroy();
      await Promise.all([inServer, outServer].map((sv) => new Promise((r) => sv.close(r))));
    },
  };
}

/** The sink announces its MAC with one broadcast, so the timed frames are learned unicast. */
async function learnSink(sink: Socket): Promise<void> {
  sink.write(encodeFrames([ethFrame(BROADCAST, B, 60)]));
  await new Promise((r) => setTimeout(r, 50));
}

async function oneSwitch(dir: string): Promise<Endpoints> {
  const sw = new VnetSwitch();
  const inPath = join(dir, "sw-a.sock");
  const outPath = join(dir, "sw-b.sock");
  await sw.addPort({ id: "a", path: inPath, epoch: 0 });
  await sw.addPort({ id: "b", path: outPath, epoch: 0 });
  return { inPath, outPath, warm: learnSink, close: () => sw.close() };
}

async function tunnel(dir: string): Promise<Endpoints> {
  const secret = "bench-cluster-secret-0123456789";
  const one = new VnetSwitch({ switchId: "host-1", secret });
  const two = new VnetSwitch({ switchId: "host-2", secret });
  const addr = await two.listen();
  await one.connectTunnel(addr);
  const inPath = join(dir, "t-a.sock");
  const outPath = join(dir, "t-b.sock");
  await one.addPort({ id: "a", path: inPath, epoch: 0 });
  await two.addPort({ id: "b", path: outPath, epoch: 0 });
  return {
    inPath,
    outPath,
    warm: learnSink,
    close: async () => {
      await one.close();
      await two.close();
    },
  };
}

interface Result {
  frames: number;
  seconds: number;
}

async function measure(ep: Endpoints, frameBytes: number, frames: number): Promise<Result> {
  const sink = await connect(ep.outPath);
  await ep.warm?.(sink);
  const sender = await connect(ep.inPath);
  const perWrite = frameBytes < 512 ? 256 : 32;
  const chunk = encodeFrames(Array.from({ length: perWrite }, () => ethFrame(B, A, frameBytes)));
  const total = Math.ceil(frames / perWrite) * perWrite;
  const expectBytes = total * (frameBytes + 4);
  let got = 0;
  const start = process.hrtime.bigint();
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sink got ${got} of ${expectBytes} bytes`)), 120_000);
    sink.on("data", (b: Buffer) => {
      got += b.length;
      if (got >= expectBytes) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  for (let sent = 0; sent < total; sent += perWrite) {
    if (!sender.write(chunk)) await new Promise((r) => sender.once("drain", r));
  }
  await done;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  sender.destroy();
  sink.destroy();
  return { frames: total, seconds };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "vnet-bench-"));
  const rows: string[][] = [];
  try {
    for (const [frameBytes, frames] of [
      [64, SMALL],
      [1500, LARGE],
    ] as const) {
      let baseline = 0;
      for (const [name, make] of [
        ["relay", relay],
        ["switch", oneSwitch],
        ["tunnel", tunnel],
      ] as const) {
        const rates: number[] = [];
        let sent = 0;
        for (let i = 0; i < REPEAT; i++) {
          const ep = await make(dir);
          try {
            const r = await measure(ep, frameBytes, frames);
            rates.push(r.frames / r.seconds);
            sent = r.frames;
          } finally {
            await ep.close();
          }
        }
        rates.sort((x, y) => x - y);
        const fps = rates[Math.floor(rates.length / 2)]!;
        if (name === "relay") baseline = fps;
        rows.push([
          name,
          String(frameBytes),
          String(sent),
          fps.toFixed(0),
          ((fps * frameBytes) / 1e6).toFixed(1),
          (fps / baseline).toFixed(2),
        ]);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const head = ["path", "frame B", "frames", "frames/s (median)", "MB/s", "vs relay"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padStart(widths[i]!)).join("  ");
  console.log(line(head));
  for (const r of rows) console.log(line(r));
}

await main();
