import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { decodeChannelLog } from "./channel-log.js";
import { encodeFrame } from "./frame-codec.js";
import { VnetSwitch, type VnetSwitchOptions } from "./switch.js";
import { FakeQemu } from "./testing/fake-qemu.js";
import { BROADCAST, ethFrame, vmMac } from "./testing/frames.js";

const A = vmMac(1);
const B = vmMac(2);
const SECRET = "test-cluster-secret-0123456789";

let dir: string;
const cleanups: (() => Promise<unknown>)[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "vnet-test-"));
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await rm(dir, { recursive: true, force: true });
});

function makeSwitch(options: VnetSwitchOptions = {}): VnetSwitch {
  const sw = new VnetSwitch({ secret: SECRET, ...options });
  cleanups.push(() => sw.close());
  return sw;
}

async function qemu(path: string): Promise<FakeQemu> {
  const q = await FakeQemu.connect(path);
  cleanups.push(() => q.close());
  return q;
}

/** A switch with ports a and b at epoch -1 and a fake QEMU on each, MACs learned. */
async function twoVms(sw = makeSwitch(), names: [string, string] = ["a", "b"]) {
  const connected = sw.events(["port-connected"]);
  for (const id of names) await sw.addPort({ id, path: join(dir, `${id}.sock`), epoch: -1 });
  const qa = await qemu(join(dir, `${names[0]}.sock`));
  const qb = await qemu(join(dir, `${names[1]}.sock`));
  await connected.next();
  await connected.next();
  connected.close();
  return { sw, qa, qb };
}

const tag = (f: Uint8Array) => f[20];

/** Resolves when `cond` holds, checked every few milliseconds (rejects after 5 s, naming it). */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; !cond(); i++) {
    if (i > 1000) throw new Error(`condition not met: ${cond.toString()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A fake QEMU's `stop`: done when everything it wrote has left its send queue. */
function flushed(q: FakeQemu): Promise<void> {
  if (q.socket.writableLength === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("the switch did not read the stopping port")), 3000);
    q.socket.once("drain", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

describe("VnetSwitch with QEMU-like peers on unix sockets", () => {
  it("switches frames between two ports, including frames split into single bytes", async () => {
    const { qa, qb } = await twoVms();
    qa.send(ethFrame(BROADCAST, A, 60, 1));
    expect(tag(await qb.next())).toBe(1);
    const bytes = encodeFrame(ethFrame(A, B, 1500, 2));
    for (const b of bytes) qb.socket.write(Uint8Array.of(b));
    const got = await qa.next();
    expect([got.length, tag(got)]).toEqual([1500, 2]);
  });

  it("drops a connection that sends an oversized length, with a port-error event", async () => {
    const sw = makeSwitch({ maxFrameBytes: 2000 });
    const { qa } = await twoVms(sw);
    const errors = sw.events(["port-error", "port-disconnected"]);
    qa.socket.write(Buffer.from([0, 0, 0x10, 0]));
    expect(await errors.next()).toMatchObject({
      type: "port-error",
      portId: "a",
      error: { code: "FRAME_TOO_LARGE" },
    });
    expect(await errors.next()).toMatchObject({ type: "port-disconnected", portId: "a" });
  });

  it("accepts a reconnecting QEMU on the same port (a restored VM)", async () => {
    const { sw, qa, qb } = await twoVms();
    const events = sw.events(["port-connected", "port-disconnected"]);
    await qb.close();
    expect(await events.next()).toMatchObject({ type: "port-disconnected", portId: "b" });
    const qb2 = await qemu(join(dir, "b.sock"));
    expect(await events.next()).toMatchObject({ type: "port-connected", portId: "b" });
    qa.send(ethFrame(B, A, 60, 3));
    expect(tag(await qb2.next())).toBe(3);
  });

  it("beginCheckpoint holds frames to the pausing port and keeps the old colour on its own", async () => {
    const { sw, qa, qb } = await twoVms();
    let release!: () => void;
    const paused = new Promise<void>((r) => {
      release = r;
    });
    const checkpoint = sw.beginCheckpoint("a", 0, () => paused);
    qb.send(ethFrame(A, B, 60, 1)); // to a while it is being paused
    qa.send(ethFrame(B, A, 60, 2)); // from a before its pause completed: colour -1
    expect(await qa.quiet(50)).toBe(0);
    expect(await qb.quiet(0)).toBe(0);
    release();
    await checkpoint;
    expect(tag(await qb.next())).toBe(2); // same colour as b: plain delivery
    expect(tag(await qa.next())).toBe(1); // b's -1 frame reached a at 0: delivered and logged
    sw.flipEpoch("b", 0);
    const log = decodeChannelLog(await sw.channelLog("a", 0));
    expect(log.records.map((r) => [r.senderPort, r.senderEpoch, tag(r.frame)])).toEqual([["b", -1, 1]]);
    expect(sw.stats().ports.find((p) => p.id === "a")).toMatchObject({ epoch: 0, connected: true });
  });

  it("colours by what QEMU sent before it stopped, even when backpressure paused its socket", async () => {
    // b's QEMU does not read: the switch queues to b, passes highWaterBytes and pauses a's socket,
    // so a's frames wait unread in the kernel (and in a's own send queue, like QEMU's net queue).
    const { sw, qa, qb } = await twoVms(makeSwitch({ highWaterBytes: 4096 }));
    qb.socket.pause();
    const frames = 400;
    for (let i = 0; i < frames; i++) qa.send(ethFrame(B, A, 1500, i & 0xff));
    // Wait until the switch stops reading a (its receive count stalls short of what a sent).
    const rx = () => sw.stats().ports.find((p) => p.id === "a")!.counters.rxFrames;
    await until(() => rx() > 0);
    for (let last = -1; rx() !== last; ) {
      last = rx();
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(rx()).toBeLessThan(frames);
    // QEMU's `stop` returns once its queued packets are written (net: "complete all queued packets
    // on VM stop"): the fake's pause is done when its send queue is empty.
    await sw.beginCheckpoint("a", 0, () => flushed(qa));
    qb.socket.resume();
    // b is still in epoch -1: every frame a sent before its checkpoint is colour -1 and delivered;
    // a frame read after the flip would be colour 0 and held for b.
    for (let i = 0; i < frames; i++) expect(tag(await qb.next())).toBe(i & 0xff);
    expect(sw.stats().ports.find((p) => p.id === "b")).toMatchObject({ heldNow: 0 });
  });

  it("stops a VM only after its QEMU has read every frame written to it before the flip", async () => {
    const { sw, qa, qb } = await twoVms();
    const frames = 200;
    for (let i = 0; i < frames; i++) qa.send(ethFrame(B, A, 1500, i & 0xff));
    const tx = () => sw.stats().ports.find((p) => p.id === "b")!.counters.txFrames;
    await until(() => tx() === frames); // all forwarded to b, most not yet read by b's QEMU
    let readAtStop = -1;
    await sw.beginCheckpoint("b", 0, async () => {
      readAtStop = qb.pending;
    });
    expect(readAtStop).toBe(frames); // each is in the guest when it stops: none is lost on restore
    expect(sw.drops()).toMatchObject({ unreadAtStop: 0, total: 0 });
  });

  it("counts a checkpoint whose QEMU did not read its frames before the stop", async () => {
    const { sw, qa, qb } = await twoVms(makeSwitch({ deliveryTimeoutMs: 100 }));
    qb.socket.pause(); // a guest that does not drain its receive ring
    for (let i = 0; i < 400; i++) qa.send(ethFrame(B, A, 1500, i & 0xff));
    const tx = () => sw.stats().ports.find((p) => p.id === "b")!.counters.txFrames;
    await until(() => tx() === 400);
    await sw.beginCheckpoint("b", 0, async () => {});
    expect(sw.drops()).toMatchObject({ unreadAtStop: 1, total: 1 });
    expect(sw.stats().ports.find((p) => p.id === "b")).toMatchObject({ epoch: 0, unreadAtStop: 1 });
  });

  it("pauses a sender while frames held for another port pass highWaterBytes, instead of dropping", async () => {
    const { sw, qa, qb } = await twoVms(makeSwitch({ highWaterBytes: 4096, maxHeldFramesPerPort: 100 }));
    sw.flipEpoch("a", 0); // a's frames are colour 0: held for b (epoch -1) until b's checkpoint
    const frames = 400;
    for (let i = 0; i < frames; i++) qa.send(ethFrame(B, A, 1500, i & 0xff));
    const rx = () => sw.stats().ports.find((p) => p.id === "a")!.counters.rxFrames;
    for (let last = -1; rx() !== last; ) {
      last = rx();
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(rx()).toBeLessThan(frames); // a was paused, not read to the end
    sw.flipEpoch("b", 0);
    for (let i = 0; i < frames; i++) expect(tag(await qb.next())).toBe(i & 0xff);
    expect(sw.drops().total).toBe(0);
  });

  it("counts frames dropped for a port without QEMU and for a full hold queue", async () => {
    const sw = makeSwitch({ maxHeldFramesPerPort: 1, dropBytes: 100 });
    const { qa } = await twoVms(sw);
    await sw.addPort({ id: "c", path: join(dir, "c.sock"), epoch: -1 }); // no QEMU connected
    qa.send(ethFrame(BROADCAST, A, 60, 1)); // to b, and kept for c
    qa.send(ethFrame(BROADCAST, A, 60, 1)); // c would keep 120 bytes > dropBytes: dropped
    await until(() => sw.drops().noQemu === 1);
    await sw.removePort("c"); // counted drops outlive the port
    sw.flipEpoch("a", 0);
    qa.send(ethFrame(B, A, 60, 2)); // colour 0 held for b at -1
    qa.send(ethFrame(B, A, 60, 3)); // a second one: the queue holds one, the oldest goes
    await until(() => sw.drops().heldOverflow === 1);
    expect(sw.drops()).toMatchObject({ noQemu: 1, heldOverflow: 1, queueOverflow: 0, total: 2 });
  });

  it("orphan case end to end: the receiver's QEMU sees nothing until its checkpoint", async () => {
    const { sw, qa, qb } = await twoVms();
    await sw.beginCheckpoint("a", 0, async () => {});
    qa.send(ethFrame(B, A, 60, 5));
    expect(await qb.quiet(100)).toBe(0);
    expect(sw.stats().ports.find((p) => p.id === "b")?.heldNow).toBe(1);
    await sw.beginCheckpoint("b", 0, async () => {});
    expect(tag(await qb.next())).toBe(5);
  });

  it("undoes the flip when pause fails", async () => {
    const { sw, qa, qb } = await twoVms();
    await expect(
      sw.beginCheckpoint("a", 0, async () => {
        throw new Error("qmp stop failed");
      }),
    ).rejects.toThrow("qmp stop failed");
    expect(sw.stats().ports.find((p) => p.id === "a")).toMatchObject({ epoch: -1, flippingTo: undefined });
    qa.send(ethFrame(B, A, 60, 6));
    expect(tag(await qb.next())).toBe(6);
  });

  it("channelLog times out with a typed error while a sender has not checkpointed", async () => {
    const { sw } = await twoVms();
    sw.flipEpoch("a", 0);
    await expect(sw.channelLog("a", 0, { timeoutMs: 50 })).rejects.toMatchObject({
      code: "TIMEOUT",
      portId: "a",
      epoch: 0,
    });
  });

  it("replays a log into a port before any live frame when QEMU connects later", async () => {
    const { sw, qa, qb } = await twoVms();
    sw.flipEpoch("b", 0);
    qa.send(ethFrame(B, A, 60, 7));
    expect(tag(await qb.next())).toBe(7);
    sw.flipEpoch("a", 0);
    const blob = await sw.channelLog("b", 0);
    const gone = sw.events(["port-disconnected"]);
    await qb.close();
    await gone.next();
    // "Restore": the switch restarts at epoch 0, b's QEMU is restored and reconnects.
    sw.reset(0);
    expect(sw.replay("b", blob)).toBe(1);
    const qb2 = await qemu(join(dir, "b.sock"));
    expect(tag(await qb2.next())).toBe(7);
  });

  it("keeps frames for a port until its QEMU connects, after the replayed ones", async () => {
    const { sw, qa, qb } = await twoVms();
    sw.flipEpoch("b", 0);
    qa.send(ethFrame(B, A, 60, 7)); // in transit across b's cut: logged
    expect(tag(await qb.next())).toBe(7);
    sw.flipEpoch("a", 0);
    const blob = await sw.channelLog("b", 0);
    const gone = sw.events(["port-disconnected"]);
    await qb.close();
    await gone.next();
    sw.reset(0); // restore: a is back first and sends before b's QEMU is there
    sw.replay("b", blob);
    qa.send(ethFrame(B, A, 60, 8));
    await until(() => sw.stats().ports.find((p) => p.id === "b")!.counters.txFrames >= 3);
    const qb2 = await qemu(join(dir, "b.sock"));
    expect([tag(await qb2.next()), tag(await qb2.next())]).toEqual([7, 8]);
    expect(sw.drops().total).toBe(0);
  });

  it("removes its socket files on close", async () => {
    const sw = new VnetSwitch();
    await sw.addPort({ id: "a", path: join(dir, "a.sock"), epoch: 0 });
    expect(await readdir(dir)).toEqual(["a.sock"]);
    await sw.close();
    expect(await readdir(dir)).toEqual([]);
    await expect(sw.addPort({ id: "b", path: join(dir, "b.sock"), epoch: 0 })).rejects.toMatchObject({
      code: "CLOSED",
    });
  });
});

describe("VnetSwitch tunnels over TCP", () => {
  async function twoHosts() {
    const one = makeSwitch({ switchId: "host-1" });
    const two = makeSwitch({ switchId: "host-2" });
    const addr = await two.listen();
    expect(addr.host).toBe("127.0.0.1");
    expect(await one.connectTunnel({ host: addr.host, port: addr.port })).toBe("host-2");
    await one.addPort({ id: "a", path: join(dir, "a.sock"), epoch: -1 });
    await two.addPort({ id: "b", path: join(dir, "b.sock"), epoch: -1 });
    const qa = await qemu(join(dir, "a.sock"));
    const qb = await qemu(join(dir, "b.sock"));
    qa.send(ethFrame(BROADCAST, A, 60, 100));
    expect(tag(await qb.next())).toBe(100);
    qb.send(ethFrame(BROADCAST, B, 60, 101));
    expect(tag(await qa.next())).toBe(101);
    return { one, two, qa, qb };
  }

  it("joins VMs on two switches into one L2 network", async () => {
    const { qa, qb } = await twoHosts();
    qa.send(ethFrame(B, A, 1500, 1));
    expect(tag(await qb.next())).toBe(1);
    qb.send(ethFrame(A, B, 60, 2));
    expect(tag(await qa.next())).toBe(2);
  });

  it("orphan and in-transit cases across the tunnel, with log completion waiting for the peer's mark", async () => {
    const { one, two, qa, qb } = await twoHosts();
    // Orphan: a checkpointed, b not yet: held at host 2.
    await one.beginCheckpoint("a", 0, async () => {});
    qa.send(ethFrame(B, A, 60, 3));
    expect(await qb.quiet(100)).toBe(0);
    // In transit: b (still -1) sends to a (already 0): delivered and logged at host 1 ...
    qb.send(ethFrame(A, B, 60, 4));
    expect(tag(await qa.next())).toBe(4);
    // ... whose log for epoch 0 completes only when host 2's mark says b has checkpointed.
    const logA = one.channelLog("a", 0);
    await two.beginCheckpoint("b", 0, async () => {});
    expect(tag(await qb.next())).toBe(3);
    const recordsA = decodeChannelLog(await logA).records;
    expect(recordsA.map((r) => [r.senderPort, r.senderEpoch, tag(r.frame)])).toEqual([["host-2", -1, 4]]);
    expect(decodeChannelLog(await two.channelLog("b", 0)).records).toEqual([]);
  });

  it("refuses a peer with another secret and says so on both sides", async () => {
    const server = makeSwitch({ switchId: "host-2" });
    const rejected = server.events(["tunnel-rejected"]);
    const addr = await server.listen();
    const intruder = makeSwitch({ switchId: "evil", secret: "not-the-cluster-secret!" });
    await expect(intruder.connectTunnel(addr)).rejects.toMatchObject({ code: "AUTH_FAILED" });
    expect(await rejected.next()).toMatchObject({ type: "tunnel-rejected" });
    expect(server.stats().tunnels).toEqual([]);
  });

  it("reconnects when the peer switch restarts on the same address", async () => {
    const one = makeSwitch({ switchId: "host-1" });
    const two = makeSwitch({ switchId: "host-2" });
    const addr = await two.listen();
    await one.connectTunnel({ ...addr, retryMs: 20 });
    const events = one.events(["tunnel-down", "tunnel-up"]);
    await two.close();
    expect(await events.next()).toMatchObject({ type: "tunnel-down", tunnelId: "host-2" });
    const again = makeSwitch({ switchId: "host-2" });
    await again.listen({ port: addr.port });
    expect(await events.next()).toMatchObject({ type: "tunnel-up", tunnelId: "host-2" });
    expect(one.stats().tunnels.map((t) => t.id)).toEqual(["host-2"]);
  });
});
