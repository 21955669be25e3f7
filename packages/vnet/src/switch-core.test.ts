import { describe, expect, it } from "vitest";
import { decodeChannelLog, encodeChannelLog } from "./channel-log.js";
import { VnetError } from "./errors.js";
import { FrameDecoder } from "./frame-codec.js";
import { type SwitchAction, SwitchCore } from "./switch-core.js";
import { BROADCAST, ethFrame, vmMac } from "./testing/frames.js";
import { decodeTunnelMessage, encodeTunnelFrame, encodeTunnelMark } from "./tunnel-codec.js";

const A = vmMac(1);
const B = vmMac(2);
const C = vmMac(3);

/** Frame from `src` to `dst` tagged by its fill byte, so tests can tell frames apart. */
const frame = (dst: string, src: string, tag: number) => ethFrame(dst, src, 60, tag);

/** "port:tag" for every delivery, "tunnel>id:tag@epoch" for every tunnel frame, "mark>id@epoch". */
function show(actions: SwitchAction[]): string[] {
  return actions.map((a) => {
    if (a.type === "deliver") return `${a.portId}:${a.frame[20]}`;
    if (a.type === "tunnel-frame") return `tunnel>${a.tunnelId}:${a.frame[20]}@${a.epoch}`;
    return `mark>${a.tunnelId}@${a.epoch}`;
  });
}

function threePorts(now = () => 0) {
  const sw = new SwitchCore({ now, macAgeingMs: 1000 });
  for (const p of ["a", "b", "c"]) sw.addPort(p, -1);
  return sw;
}

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
}

describe("SwitchCore forwarding", () => {
  it("floods broadcast and unknown unicast to every other port, then forwards learned unicast", () => {
    const sw = threePorts();
    expect(show(sw.fromPort("a", frame(BROADCAST, A, 1)))).toEqual(["b:1", "c:1"]);
    expect(show(sw.fromPort("b", frame(C, B, 2)))).toEqual(["a:2", "c:2"]);
    expect(show(sw.fromPort("c", frame(A, C, 3)))).toEqual(["a:3"]);
    expect(show(sw.fromPort("a", frame(B, A, 4)))).toEqual(["b:4"]);
    expect(sw.counters()).toMatchObject({ floodedFrames: 2 });
  });

  it("floods multicast destinations and never learns a group source", () => {
    const sw = threePorts();
    expect(show(sw.fromPort("a", frame("33:33:00:00:00:01", A, 1)))).toEqual(["b:1", "c:1"]);
    sw.fromPort("b", frame(A, "01:00:5e:00:00:01", 2));
    expect(sw.lookupMac(Uint8Array.from([1, 0, 0x5e, 0, 0, 1]))).toBeUndefined();
  });

  it("filters a frame whose destination was learned on its own ingress port", () => {
    const sw = threePorts();
    sw.fromPort("a", frame(BROADCAST, A, 1));
    sw.fromPort("a", frame(BROADCAST, C, 2)); // C appears behind port a
    expect(sw.fromPort("a", frame(C, A, 3))).toEqual([]);
    expect(sw.counters().filteredFrames).toBe(1);
  });

  it("ages learned MACs with the injected clock", () => {
    let t = 0;
    const sw = threePorts(() => t);
    sw.fromPort("b", frame(BROADCAST, B, 1));
    t = 1000;
    expect(show(sw.fromPort("a", frame(B, A, 2)))).toEqual(["b:2"]);
    t = 2001; // B last seen at 0 and A at 1000: both older than 1000 ms, so B is unknown again
    expect(show(sw.fromPort("c", frame(B, C, 3)))).toEqual(["a:3", "b:3"]);
    expect(sw.expireMacs()).toBe(2);
    expect(sw.lookupMac(ethFrame(C, C).subarray(0, 6))).toBe("c");
  });

  it("drops runts and forgets a removed port's MACs", () => {
    const sw = threePorts();
    expect(sw.fromPort("a", new Uint8Array(13))).toEqual([]);
    expect(sw.counters().runtFrames).toBe(1);
    sw.fromPort("b", frame(BROADCAST, B, 1));
    sw.removePort("b");
    expect(sw.lookupMac(ethFrame(B, B).subarray(0, 6))).toBeUndefined();
    expect(show(sw.fromPort("a", frame(B, A, 2)))).toEqual(["c:2"]);
  });

  it("rejects unknown and duplicate ports with typed errors", () => {
    const sw = threePorts();
    expect(caught(() => sw.fromPort("x", frame(A, B, 1)))).toMatchObject({
      code: "UNKNOWN_PORT",
      portId: "x",
    });
    expect(caught(() => sw.addPort("a", 0))).toMatchObject({ code: "DUPLICATE_PORT" });
    expect(VnetError.isInstance(caught(() => sw.addTunnel("a")))).toBe(true);
  });
});

/** Two VM ports a (MAC A) and b (MAC B), both learned, starting at epoch -1. */
function pair() {
  let t = 0;
  const sw = new SwitchCore({ now: () => t });
  sw.addPort("a", -1);
  sw.addPort("b", -1);
  sw.fromPort("a", frame(BROADCAST, A, 100));
  sw.fromPort("b", frame(BROADCAST, B, 101));
  return { sw, tick: (ms: number) => (t += ms) };
}

describe("epoch colouring", () => {
  it("delivers a frame between ports in the same epoch, unlogged", () => {
    const { sw } = pair();
    sw.flip("a", 0);
    sw.flip("b", 0);
    expect(show(sw.fromPort("a", frame(B, A, 1)))).toEqual(["b:1"]);
    expect(sw.takeChannelLog("b", 0)).toEqual([]);
  });

  it("orphan case: a frame sent after the sender's checkpoint is held until the receiver's, never before", () => {
    const { sw } = pair();
    sw.addPort("c", -1);
    sw.flip("a", 0); // sender checkpointed
    const before = sw.portInfo("b").counters.txFrames;
    expect(sw.fromPort("a", frame(B, A, 1))).toEqual([]); // receiver still at -1: held
    expect(sw.portInfo("b")).toMatchObject({ heldNow: 1, counters: { heldFrames: 1, txFrames: before } });
    // Traffic to b in its own epoch still flows past the held frame.
    expect(show(sw.fromPort("c", frame(B, C, 2)))).toEqual(["b:2"]);
    sw.beginFlip("b", 0);
    expect(sw.fromPort("a", frame(B, A, 3))).toEqual([]);
    expect(sw.portInfo("b").heldNow).toBe(2); // still held while b is being paused
    expect(show(sw.completeFlip("b"))).toEqual(["b:1", "b:3"]);
    expect(sw.portInfo("b").heldNow).toBe(0);
    sw.flip("c", 0);
    expect(sw.takeChannelLog("b", 0)).toEqual([]); // same epoch on delivery: not channel state
  });

  it("holds a frame from two epochs ahead until the receiver reaches that epoch", () => {
    const { sw } = pair();
    sw.flip("a", 0);
    sw.flip("a", 1);
    sw.fromPort("a", frame(B, A, 1));
    expect(sw.flip("b", 0)).toEqual([]);
    expect(show(sw.flip("b", 1))).toEqual(["b:1"]);
  });

  it("in-transit case: a frame sent before the sender's checkpoint arriving after the receiver's is delivered and logged", () => {
    const { sw, tick } = pair();
    sw.flip("b", 0); // receiver checkpointed first
    tick(5);
    expect(show(sw.fromPort("a", frame(B, A, 7)))).toEqual(["b:7"]); // sender still at -1
    expect(sw.portInfo("b").counters.loggedFrames).toBe(1);
    expect(sw.channelLogComplete("b", 0)).toBe(false); // a may still send epoch -1 frames
    expect(caught(() => sw.takeChannelLog("b", 0))).toMatchObject({ code: "BAD_STATE", state: "open" });
    sw.flip("a", 0);
    expect(sw.channelLogComplete("b", 0)).toBe(true);
    const records = sw.takeChannelLog("b", 0);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ senderPort: "a", senderEpoch: -1, receivedAt: 5 });
    expect([...records[0]!.senderMac]).toEqual([0x52, 0x54, 0, 0, 0, 1]);
    // Restore of epoch 0: the blob goes through storage, then replay delivers the frame again.
    const blob = encodeChannelLog({ epoch: 0, records });
    const restored = new SwitchCore();
    restored.addPort("b", 0);
    expect(show(restored.replay("b", decodeChannelLog(blob).records))).toEqual(["b:7"]);
    expect(caught(() => sw.takeChannelLog("b", 0))).toMatchObject({ code: "BAD_STATE", state: "sealed" });
  });

  it("logs a frame that crossed several cuts into every one of them", () => {
    const { sw } = pair();
    sw.flip("b", 0);
    sw.flip("b", 1);
    sw.fromPort("a", frame(B, A, 3)); // colour -1 reaches b at 1: in transit across cuts 0 and 1
    sw.flip("a", 0);
    sw.flip("a", 1);
    expect(sw.takeChannelLog("b", 1)).toHaveLength(1);
    // Taking 1 sealed 0 as well (an older untaken log belongs to an aborted epoch).
    expect(caught(() => sw.takeChannelLog("b", 0))).toMatchObject({ code: "BAD_STATE", state: "sealed" });
  });

  it("counts a frame that arrives for an already taken log as late", () => {
    const { sw } = pair();
    sw.flip("b", 0);
    expect(sw.takeChannelLog("b", 0, { force: true })).toEqual([]);
    sw.fromPort("a", frame(B, A, 4));
    expect(sw.counters().lateFrames).toBe(1);
  });

  it("while flipping, holds frames to the port and queues frames from it with the old colour", () => {
    const { sw } = pair();
    sw.beginFlip("a", 0);
    expect(sw.fromPort("a", frame(B, A, 1))).toEqual([]); // sent before the pause completed
    expect(sw.fromPort("b", frame(A, B, 2))).toEqual([]); // a is being paused: wait
    expect(sw.mark()).toBe(-1);
    const released = show(sw.completeFlip("a"));
    // a's queued frame keeps colour -1 and reaches b (at -1) directly; b's frame (colour -1)
    // reaches a (now 0) late, so it is delivered and logged into a's epoch 0.
    expect(released).toEqual(["b:1", "a:2"]);
    sw.flip("b", 0);
    expect(sw.takeChannelLog("a", 0).map((r) => r.frame[20])).toEqual([2]);
    expect(sw.takeChannelLog("b", 0)).toEqual([]);
  });

  it("abortFlip keeps the old epoch and releases what waited", () => {
    const { sw } = pair();
    sw.beginFlip("a", 0);
    sw.fromPort("a", frame(B, A, 1));
    sw.fromPort("b", frame(A, B, 2));
    expect(show(sw.abortFlip("a"))).toEqual(["b:1", "a:2"]);
    expect(sw.portInfo("a")).toMatchObject({ epoch: -1, flippingTo: undefined });
    expect(sw.portInfo("a").counters.loggedFrames).toBe(0);
  });

  it("refuses flips that go backwards, double flips and completing a flip never begun", () => {
    const { sw } = pair();
    sw.flip("a", 2);
    expect(caught(() => sw.beginFlip("a", 2))).toMatchObject({ code: "BAD_EPOCH", epoch: 2 });
    sw.beginFlip("a", 3);
    expect(caught(() => sw.beginFlip("a", 4))).toMatchObject({ code: "BAD_STATE", state: "flipping" });
    expect(caught(() => sw.completeFlip("b"))).toMatchObject({ code: "BAD_STATE" });
    sw.completeFlip("a");
    sw.flip("b", 1);
    expect(sw.mark()).toBe(1);
    expect(caught(() => sw.addPort("late", 0))).toMatchObject({ code: "BAD_EPOCH", portId: "late" });
  });

  it("drops the oldest held frame when the hold queue is full", () => {
    const sw = new SwitchCore({ maxHeldFramesPerPort: 2 });
    sw.addPort("a", -1);
    sw.addPort("b", -1);
    sw.flip("a", 0);
    for (const tag of [1, 2, 3]) sw.fromPort("a", frame(B, A, tag));
    expect(sw.portInfo("b").counters.droppedFrames).toBe(1);
    expect(show(sw.flip("b", 0))).toEqual(["b:2", "b:3"]);
  });

  it("reset moves every port to the restored epoch and forgets held frames, logs and MACs", () => {
    const { sw } = pair();
    sw.flip("a", 0);
    sw.fromPort("a", frame(B, A, 1));
    sw.reset(0);
    expect(sw.ports().map((p) => [p.id, p.epoch, p.heldNow])).toEqual([
      ["a", 0, 0],
      ["b", 0, 0],
    ]);
    expect(show(sw.fromPort("a", frame(B, A, 2)))).toEqual(["b:2"]); // flooded: MACs forgotten
    expect(sw.counters().floodedFrames).toBeGreaterThan(0);
  });
});

/**
 * Two switch cores joined by a tunnel whose bytes go through the real tunnel codec and sit in a
 * FIFO "wire" until `drain` is called, so a test can keep frames in flight across a checkpoint.
 */
function twoSwitches() {
  const one = new SwitchCore();
  const two = new SwitchCore();
  one.addPort("a", -1);
  two.addPort("b", -1);
  const wires = new Map<SwitchCore, { to: SwitchCore; from: string; bytes: Buffer[] }>([
    [one, { to: two, from: "one", bytes: [] }],
    [two, { to: one, from: "two", bytes: [] }],
  ]);
  const delivered: string[] = [];
  const run = (sw: SwitchCore, actions: SwitchAction[]) => {
    for (const a of actions) {
      if (a.type === "deliver") delivered.push(`${a.portId}:${a.frame[20]}`);
      else if (a.type === "tunnel-frame") wires.get(sw)!.bytes.push(encodeTunnelFrame(a.epoch, a.frame));
      else wires.get(sw)!.bytes.push(encodeTunnelMark(a.epoch));
    }
  };
  /** Moves every byte in flight from `sw` to its peer. */
  const drain = (sw: SwitchCore) => {
    const wire = wires.get(sw)!;
    const dec = new FrameDecoder({ maxFrameBytes: 70_000 });
    for (const body of dec.push(Buffer.concat(wire.bytes.splice(0)))) {
      const m = decodeTunnelMessage(body);
      if (m.type === "frame") run(wire.to, wire.to.fromTunnel(wire.from, m.epoch, m.frame));
      else if (m.type === "mark") wire.to.markFromTunnel(wire.from, m.epoch);
    }
  };
  run(one, one.addTunnel("two"));
  run(two, two.addTunnel("one"));
  drain(one);
  drain(two);
  // Learn both MACs across the tunnel.
  run(one, one.fromPort("a", frame(BROADCAST, A, 100)));
  run(two, two.fromPort("b", frame(BROADCAST, B, 101)));
  drain(one);
  drain(two);
  delivered.length = 0;
  return { one, two, run, drain, delivered };
}

describe("epoch colouring across a tunnel", () => {
  it("forwards learned unicast into the tunnel with the sender's colour, and never tunnel to tunnel", () => {
    const { one, two, run, drain, delivered } = twoSwitches();
    expect(one.lookupMac(ethFrame(B, B).subarray(0, 6))).toBe("two");
    run(one, one.fromPort("a", frame(B, A, 1)));
    drain(one);
    expect(delivered).toEqual(["b:1"]);
    two.addTunnel("three");
    expect(show(two.fromTunnel("one", -1, frame(BROADCAST, A, 2)))).toEqual(["b:2"]);
  });

  it("orphan case: held at the remote receiver until it checkpoints", () => {
    const { one, two, run, drain, delivered } = twoSwitches();
    run(one, one.flip("a", 0));
    run(one, one.fromPort("a", frame(B, A, 1)));
    drain(one);
    expect(delivered).toEqual([]);
    expect(two.portInfo("b").heldNow).toBe(1);
    run(two, two.flip("b", 0));
    expect(delivered).toEqual(["b:1"]);
    drain(two);
    expect(two.takeChannelLog("b", 0)).toEqual([]);
  });

  it("in-transit case: delivered and logged at the remote receiver, complete only after the sender's mark", () => {
    const { one, two, run, drain, delivered } = twoSwitches();
    run(one, one.fromPort("a", frame(B, A, 9))); // colour -1, still on the wire
    run(two, two.flip("b", 0));
    run(one, one.flip("a", 0)); // queues mark 0 behind the frame
    expect(two.channelLogComplete("b", 0)).toBe(false);
    drain(one);
    expect(delivered).toEqual(["b:9"]);
    expect(two.remoteMark("one")).toBe(0);
    expect(two.channelLogComplete("b", 0)).toBe(true);
    const records = two.takeChannelLog("b", 0);
    expect(records.map((r) => [r.senderPort, r.senderEpoch, r.frame[20]])).toEqual([["one", -1, 9]]);
    // Restore: a fresh switch at epoch 0 replays the decoded log into b.
    const restored = new SwitchCore();
    restored.addPort("b", 0);
    const blob = encodeChannelLog({ epoch: 0, records });
    expect(show(restored.replay("b", decodeChannelLog(blob).records))).toEqual(["b:9"]);
  });
});
