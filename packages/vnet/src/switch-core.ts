import { VnetError } from "./errors.js";
import { ETH_HEADER_BYTES, isGroupMac, macKey } from "./mac.js";

/**
 * The switch without sockets or timers: ports, MAC learning, flooding, tunnels and epoch colouring.
 * Every input (a frame from a port or tunnel, an epoch flip, a tunnel mark) returns the resulting
 * forwarding decisions as data (`SwitchAction[]`); the caller performs them in order.
 *
 * Epoch colours. A VM port's epoch is the number of the last checkpoint its VM has taken (or the
 * epoch it was created or restored at). A frame is coloured with its sender's epoch when it enters
 * the switch (tunnels carry the colour across). At a receiving VM port in epoch r, a frame of
 * colour s is:
 *   s == r  delivered;
 *   s >  r  HELD until the receiver has flipped to an epoch >= s (delivering it earlier would put
 *           into checkpoint r a frame whose send is not in the sender's checkpoint: an orphan);
 *   s <  r  delivered AND appended to the receiver's channel log of every epoch in (s, r] that the
 *           port has flipped to: the frame was sent before those cuts and received after them, so a
 *           restore of any of them must replay it.
 * While a port is flipping (between beginFlip and completeFlip, i.e. while its VM is being
 * paused) nothing is delivered to it (frames wait with the held ones) and frames from it wait in
 * an ingress queue; they were sent before the pause, so they keep the old colour when released.
 *
 * Tunnels. Each switch announces to its tunnel peers a *mark*: the lowest epoch of its VM ports.
 * Tunnels are FIFO, so after mark m no frame coloured below m comes from that peer. The channel log
 * of (port, e) is complete once every local VM port and every tunnel peer's mark is >= e.
 * Tunnels form a full mesh: frames from a tunnel are never forwarded into another tunnel.
 */

export interface SwitchCoreOptions {
  /** Clock in milliseconds (injected: the core has no timers). Default `Date.now`. */
  now?: () => number;
  /** A learned MAC is forgotten this long after its last frame. Default 300 000 ms (as 802.1D). */
  macAgeingMs?: number;
  /** Held frames per port beyond which the oldest is dropped. Default 8192. */
  maxHeldFramesPerPort?: number;
  /**
   * Mark announced while the switch has no VM ports, and the lowest epoch a port may be added at.
   * Default -1 ("no checkpoint yet": checkpoint 0 flips ports to 0).
   */
  initialEpoch?: number;
}

/** Deliver a frame to a VM port (write it to its QEMU connection). */
export interface DeliverAction {
  type: "deliver";
  portId: string;
  frame: Uint8Array;
}

/** Send a coloured frame to a tunnel peer. */
export interface TunnelFrameAction {
  type: "tunnel-frame";
  tunnelId: string;
  epoch: number;
  frame: Uint8Array;
}

/** Announce this switch's mark (lowest VM port epoch) to a tunnel peer. */
export interface TunnelMarkAction {
  type: "tunnel-mark";
  tunnelId: string;
  epoch: number;
}

export type SwitchAction = DeliverAction | TunnelFrameAction | TunnelMarkAction;

/** One frame of a channel log: in transit across the cut of `epoch` into `portId`. */
export interface ChannelLogRecord {
  /** Port or tunnel id the frame entered this switch by. */
  senderPort: string;
  /** Source MAC of the frame (bytes 6..11). */
  senderMac: Uint8Array;
  senderEpoch: number;
  /** Clock value (ms) when the switch received it. */
  receivedAt: number;
  frame: Uint8Array;
}

export interface PortCounters {
  /** Frames that entered the switch from this port. */
  rxFrames: number;
  /** Frames delivered to this port (including released held frames and replays). */
  txFrames: number;
  /** Frames that had to wait for this port (newer colour, or the port was flipping). */
  heldFrames: number;
  /** Frames delivered late across a cut and logged (counted once per frame). */
  loggedFrames: number;
  /** Held frames dropped because the hold queue was full. */
  droppedFrames: number;
}

export interface SwitchCounters {
  /** Frames shorter than an Ethernet header, dropped. */
  runtFrames: number;
  /** Unicast frames whose destination sits behind the port they came in by, dropped. */
  filteredFrames: number;
  /** Frames sent to every port because the destination was a group or unknown address. */
  floodedFrames: number;
  /** Frames that should have been logged into an epoch whose log was already taken. */
  lateFrames: number;
  /** Held frames dropped because a port's hold queue was full (all ports, also removed ones). */
  heldDroppedFrames: number;
}

export interface PortInfo {
  id: string;
  epoch: number;
  /** Epoch being flipped to, while a checkpoint is in progress. */
  flippingTo: number | undefined;
  heldNow: number;
  /** Bytes of the held frames (a caller applies backpressure on it). */
  heldBytes: number;
  /** Bytes the port sent while flipping, waiting to be forwarded with the old colour. */
  ingressBytes: number;
  counters: PortCounters;
}

interface HeldFrame {
  frame: Uint8Array;
  senderPort: string;
  senderEpoch: number;
  receivedAt: number;
}

interface VmPort {
  id: string;
  epoch: number;
  /** Epoch the port was created (or reset) at: it has no channel log for it or below. */
  baseEpoch: number;
  flippingTo: number | undefined;
  ingressQueue: Uint8Array[];
  ingressBytes: number;
  held: HeldFrame[];
  heldBytes: number;
  /** Channel logs not yet taken, by epoch. */
  logs: Map<number, ChannelLogRecord[]>;
  /** Highest epoch whose log was taken; later frames for it are counted as late. */
  sealedThrough: number;
  counters: PortCounters;
}

interface TunnelPort {
  id: string;
  /** Last mark announced by the peer; undefined until its first one. */
  remoteMark: number | undefined;
}

interface MacEntry {
  portId: string;
  seenAt: number;
}

function checkEpoch(epoch: number, what: string): void {
  if (!Number.isSafeInteger(epoch) || epoch < -1) {
    throw new VnetError("BAD_EPOCH", `${what} must be an integer >= -1, got ${epoch}`, { epoch });
  }
}

export class SwitchCore {
  readonly #now: () => number;
  readonly #ageMs: number;
  readonly #maxHeld: number;
  readonly #ports = new Map<string, VmPort>();
  readonly #tunnels = new Map<string, TunnelPort>();
  readonly #macs = new Map<number, MacEntry>();
  readonly #counters: SwitchCounters = {
    runtFrames: 0,
    filteredFrames: 0,
    floodedFrames: 0,
    lateFrames: 0,
    heldDroppedFrames: 0,
  };
  /** Highest mark announced so far; ports may not be added below it. */
  #floor: number;

  constructor(options: SwitchCoreOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#ageMs = options.macAgeingMs ?? 300_000;
    this.#maxHeld = options.maxHeldFramesPerPort ?? 8192;
    this.#floor = options.initialEpoch ?? -1;
    checkEpoch(this.#floor, "initialEpoch");
    if (!(this.#ageMs > 0)) throw new VnetError("INVALID_ARGUMENT", "macAgeingMs must be > 0");
    if (!Number.isInteger(this.#maxHeld) || this.#maxHeld < 1) {
      throw new VnetError("INVALID_ARGUMENT", "maxHeldFramesPerPort must be an integer >= 1");
    }
  }

  // ---- ports and tunnels -------------------------------------------------------------------

  addPort(id: string, epoch: number): SwitchAction[] {
    checkEpoch(epoch, "port epoch");
    this.#checkNewId(id);
    if (epoch < this.#floor) {
      throw new VnetError(
        "BAD_EPOCH",
        `port ${id} at epoch ${epoch} is below the switch's announced mark ${this.#floor}`,
        { portId: id, epoch },
      );
    }
    this.#ports.set(id, {
      id,
      epoch,
      baseEpoch: epoch,
      flippingTo: undefined,
      ingressQueue: [],
      ingressBytes: 0,
      held: [],
      heldBytes: 0,
      logs: new Map(),
      sealedThrough: epoch,
      counters: { rxFrames: 0, txFrames: 0, heldFrames: 0, loggedFrames: 0, droppedFrames: 0 },
    });
    return [];
  }

  /** Removes a VM port, its held frames, logs and learned MACs; the mark may rise. */
  removePort(id: string): SwitchAction[] {
    this.#port(id);
    this.#ports.delete(id);
    this.#forgetMacs(id);
    return this.#announceMark();
  }

  /** Adds a tunnel to a peer switch; returns the mark to announce to it. */
  addTunnel(id: string): SwitchAction[] {
    this.#checkNewId(id);
    this.#tunnels.set(id, { id, remoteMark: undefined });
    return [{ type: "tunnel-mark", tunnelId: id, epoch: this.mark() }];
  }

  removeTunnel(id: string): void {
    if (!this.#tunnels.delete(id)) throw new VnetError("UNKNOWN_PORT", `no tunnel ${id}`, { tunnelId: id });
    this.#forgetMacs(id);
  }

  hasPort(id: string): boolean {
    return this.#ports.has(id);
  }

  hasTunnel(id: string): boolean {
    return this.#tunnels.has(id);
  }

  portInfo(id: string): PortInfo {
    const p = this.#port(id);
    return {
      id,
      epoch: p.epoch,
      flippingTo: p.flippingTo,
      heldNow: p.held.length,
      heldBytes: p.heldBytes,
      ingressBytes: p.ingressBytes,
      counters: { ...p.counters },
    };
  }

  ports(): PortInfo[] {
    return [...this.#ports.keys()].map((id) => this.portInfo(id));
  }

  counters(): SwitchCounters {
    return { ...this.#counters };
  }

  /** Lowest epoch of the VM ports (old epoch while flipping); with no ports, the last mark. */
  mark(): number {
    let m = Number.POSITIVE_INFINITY;
    for (const p of this.#ports.values()) m = Math.min(m, p.epoch);
    return m === Number.POSITIVE_INFINITY ? this.#floor : m;
  }

  /** Last mark a tunnel peer announced (undefined before its first). */
  remoteMark(tunnelId: string): number | undefined {
    return this.#tunnel(tunnelId).remoteMark;
  }

  // ---- frames ------------------------------------------------------------------------------

  /** A frame sent by the VM on `portId`. */
  fromPort(portId: string, frame: Uint8Array): SwitchAction[] {
    const p = this.#port(portId);
    p.counters.rxFrames++;
    if (p.flippingTo !== undefined) {
      // Sent before the pause: keeps the old colour, forwarded when the flip completes.
      p.ingressQueue.push(frame.slice());
      p.ingressBytes += frame.length;
      return [];
    }
    const out: SwitchAction[] = [];
    this.#forward(portId, true, p.epoch, frame, out);
    return out;
  }

  /** A coloured frame that came through tunnel `tunnelId`. */
  fromTunnel(tunnelId: string, epoch: number, frame: Uint8Array): SwitchAction[] {
    this.#tunnel(tunnelId);
    checkEpoch(epoch, "frame epoch");
    const out: SwitchAction[] = [];
    this.#forward(tunnelId, false, epoch, frame, out);
    return out;
  }

  /** The tunnel peer's mark: no frame coloured below `epoch` will follow on this tunnel. */
  markFromTunnel(tunnelId: string, epoch: number): void {
    checkEpoch(epoch, "mark");
    this.#tunnel(tunnelId).remoteMark = epoch;
  }

  // ---- epochs ------------------------------------------------------------------------------

  /** Starts flipping `portId` to `epoch`: from now on nothing goes to or comes from the port. */
  beginFlip(portId: string, epoch: number): void {
    const p = this.#port(portId);
    checkEpoch(epoch, "epoch");
    if (p.flippingTo !== undefined) {
      throw new VnetError("BAD_STATE", `port ${portId} is already flipping to ${p.flippingTo}`, {
        portId,
        epoch,
        state: "flipping",
      });
    }
    if (epoch <= p.epoch) {
      throw new VnetError("BAD_EPOCH", `port ${portId} is at epoch ${p.epoch}; cannot flip to ${epoch}`, {
        portId,
        epoch,
      });
    }
    p.flippingTo = epoch;
  }

  /**
   * Ends the flip: the port is now in the new epoch. Frames it sent during the flip are forwarded
   * with the old colour, held frames it may now receive are delivered (and logged when older), and
   * the tunnel peers learn the new mark if it rose.
   */
  completeFlip(portId: string): SwitchAction[] {
    const p = this.#flippingPort(portId);
    const out = this.#endFlip(p, p.flippingTo ?? p.epoch);
    out.push(...this.#announceMark());
    return out;
  }

  /** Cancels a flip (the pause failed): the port stays in its old epoch and traffic resumes. */
  abortFlip(portId: string): SwitchAction[] {
    const p = this.#flippingPort(portId);
    return this.#endFlip(p, p.epoch);
  }

  /** beginFlip + completeFlip, for a VM the caller has already paused (or in tests). */
  flip(portId: string, epoch: number): SwitchAction[] {
    this.beginFlip(portId, epoch);
    return this.completeFlip(portId);
  }

  /**
   * True when no more frames can be added to the channel log of (`portId`, `epoch`): every local VM
   * port is at or beyond `epoch` (and not holding pre-pause frames) and every tunnel peer's mark is.
   */
  channelLogComplete(portId: string, epoch: number): boolean {
    const p = this.#port(portId);
    if (p.epoch < epoch) return false;
    for (const q of this.#ports.values()) if (q.epoch < epoch) return false;
    for (const t of this.#tunnels.values())
      if (t.remoteMark === undefined || t.remoteMark < epoch) return false;
    return true;
  }

  /**
   * Takes the channel log of (`portId`, `epoch`) and seals it and every older log of the port
   * (older untaken logs belong to aborted epochs and are discarded). Throws BAD_STATE when the
   * log is not complete, unless `force` (then frames still in flight will be counted as late).
   */
  takeChannelLog(portId: string, epoch: number, options: { force?: boolean } = {}): ChannelLogRecord[] {
    const p = this.#port(portId);
    if (epoch <= p.baseEpoch || epoch > p.epoch) {
      throw new VnetError(
        "BAD_EPOCH",
        `port ${portId} has channel logs for epochs ${p.baseEpoch + 1}..${p.epoch}, not ${epoch}`,
        { portId, epoch },
      );
    }
    if (epoch <= p.sealedThrough) {
      throw new VnetError("BAD_STATE", `channel log of port ${portId} epoch ${epoch} was already taken`, {
        portId,
        epoch,
        state: "sealed",
      });
    }
    if (options.force !== true && !this.channelLogComplete(portId, epoch)) {
      throw new VnetError("BAD_STATE", `channel log of port ${portId} epoch ${epoch} is not complete yet`, {
        portId,
        epoch,
        state: "open",
      });
    }
    const records = p.logs.get(epoch) ?? [];
    for (const e of p.logs.keys()) if (e <= epoch) p.logs.delete(e);
    p.sealedThrough = epoch;
    return records;
  }

  /**
   * Re-delivers logged frames to a port after its VM was restored from the checkpoint the log
   * belongs to. No colouring, learning or logging: these frames are already part of that epoch.
   */
  replay(portId: string, records: readonly ChannelLogRecord[]): SwitchAction[] {
    const p = this.#port(portId);
    const out: SwitchAction[] = [];
    for (const r of records) {
      p.counters.txFrames++;
      out.push({ type: "deliver", portId, frame: r.frame });
    }
    return out;
  }

  /**
   * Restarts colouring at `epoch` for a whole-cluster restore (every VM of the cluster stopped):
   * every port moves to `epoch`, held frames, logs and learned MACs are dropped, tunnel peers'
   * marks are forgotten until they announce again, and the new mark is announced.
   */
  reset(epoch: number): SwitchAction[] {
    checkEpoch(epoch, "epoch");
    for (const p of this.#ports.values()) {
      p.epoch = epoch;
      p.baseEpoch = epoch;
      p.sealedThrough = epoch;
      p.flippingTo = undefined;
      p.ingressQueue = [];
      p.ingressBytes = 0;
      p.held = [];
      p.heldBytes = 0;
      p.logs.clear();
    }
    for (const t of this.#tunnels.values()) t.remoteMark = undefined;
    this.#macs.clear();
    this.#floor = epoch;
    const out: SwitchAction[] = [];
    for (const t of this.#tunnels.keys()) out.push({ type: "tunnel-mark", tunnelId: t, epoch });
    return out;
  }

  /** Drops learned MACs older than the ageing time (lookups ignore them anyway; this bounds memory). */
  expireMacs(): number {
    const now = this.#now();
    let n = 0;
    for (const [k, e] of this.#macs) {
      if (now - e.seenAt > this.#ageMs) {
        this.#macs.delete(k);
        n++;
      }
    }
    return n;
  }

  /** Where the switch currently sends frames for this MAC (undefined: unknown or aged out). */
  lookupMac(mac: Uint8Array): string | undefined {
    const e = this.#macs.get(macKey(mac, 0));
    if (e === undefined || this.#now() - e.seenAt > this.#ageMs) return undefined;
    return e.portId;
  }

  // ---- internals ---------------------------------------------------------------------------

  #forward(ingress: string, fromVm: boolean, colour: number, frame: Uint8Array, out: SwitchAction[]): void {
    if (frame.length < ETH_HEADER_BYTES) {
      this.#counters.runtFrames++;
      return;
    }
    const now = this.#now();
    if (!isGroupMac(frame, 6)) this.#macs.set(macKey(frame, 6), { portId: ingress, seenAt: now });

    if (!isGroupMac(frame, 0)) {
      const entry = this.#macs.get(macKey(frame, 0));
      if (entry !== undefined && now - entry.seenAt <= this.#ageMs) {
        if (entry.portId === ingress) {
          this.#counters.filteredFrames++;
          return;
        }
        const port = this.#ports.get(entry.portId);
        if (port !== undefined) {
          this.#deliverColoured(port, ingress, colour, frame, now, out);
          return;
        }
        if (fromVm && this.#tunnels.has(entry.portId)) {
          out.push({ type: "tunnel-frame", tunnelId: entry.portId, epoch: colour, frame });
          return;
        }
        // Learned behind a tunnel but the frame came from a tunnel: the peer must deliver it itself.
        if (!fromVm) {
          this.#counters.filteredFrames++;
          return;
        }
      }
    }
    this.#counters.floodedFrames++;
    for (const port of this.#ports.values()) {
      if (port.id !== ingress) this.#deliverColoured(port, ingress, colour, frame, now, out);
    }
    if (fromVm) {
      for (const t of this.#tunnels.keys())
        out.push({ type: "tunnel-frame", tunnelId: t, epoch: colour, frame });
    }
  }

  #deliverColoured(
    p: VmPort,
    senderPort: string,
    colour: number,
    frame: Uint8Array,
    receivedAt: number,
    out: SwitchAction[],
  ): void {
    if (p.flippingTo !== undefined || colour > p.epoch) {
      p.counters.heldFrames++;
      if (p.held.length >= this.#maxHeld) {
        p.heldBytes -= p.held.shift()?.frame.length ?? 0;
        p.counters.droppedFrames++;
        this.#counters.heldDroppedFrames++;
      }
      p.held.push({ frame: frame.slice(), senderPort, senderEpoch: colour, receivedAt });
      p.heldBytes += frame.length;
      return;
    }
    if (colour < p.epoch) this.#log(p, senderPort, colour, frame, receivedAt);
    p.counters.txFrames++;
    out.push({ type: "deliver", portId: p.id, frame });
  }

  #flippingPort(portId: string): VmPort {
    const p = this.#port(portId);
    if (p.flippingTo === undefined) {
      throw new VnetError("BAD_STATE", `port ${portId} is not flipping`, { portId, state: "steady" });
    }
    return p;
  }

  /** Leaves the flipping state at `epoch`: pre-pause frames go out with the old colour, held ones are re-checked. */
  #endFlip(p: VmPort, epoch: number): SwitchAction[] {
    const out: SwitchAction[] = [];
    const oldEpoch = p.epoch;
    const queued = p.ingressQueue;
    p.ingressQueue = [];
    p.ingressBytes = 0;
    p.epoch = epoch;
    p.flippingTo = undefined;
    for (const f of queued) this.#forward(p.id, true, oldEpoch, f, out);
    this.#releaseHeld(p, out);
    return out;
  }

  #releaseHeld(p: VmPort, out: SwitchAction[]): void {
    const still: HeldFrame[] = [];
    for (const h of p.held) {
      if (h.senderEpoch > p.epoch) {
        still.push(h);
        continue;
      }
      p.heldBytes -= h.frame.length;
      if (h.senderEpoch < p.epoch) this.#log(p, h.senderPort, h.senderEpoch, h.frame, h.receivedAt);
      p.counters.txFrames++;
      out.push({ type: "deliver", portId: p.id, frame: h.frame });
    }
    p.held = still;
  }

  #log(p: VmPort, senderPort: string, colour: number, frame: Uint8Array, receivedAt: number): void {
    const from = Math.max(colour, p.baseEpoch) + 1;
    if (from > p.epoch) return;
    p.counters.loggedFrames++;
    const record: ChannelLogRecord = {
      senderPort,
      senderMac: frame.slice(6, 12),
      senderEpoch: colour,
      receivedAt,
      frame: frame.slice(),
    };
    for (let e = from; e <= p.epoch; e++) {
      if (e <= p.sealedThrough) {
        this.#counters.lateFrames++;
        continue;
      }
      let log = p.logs.get(e);
      if (log === undefined) {
        log = [];
        p.logs.set(e, log);
      }
      log.push(record);
    }
  }

  #announceMark(): SwitchAction[] {
    const m = this.mark();
    if (m <= this.#floor) return [];
    this.#floor = m;
    const out: SwitchAction[] = [];
    for (const t of this.#tunnels.keys()) out.push({ type: "tunnel-mark", tunnelId: t, epoch: m });
    return out;
  }

  #forgetMacs(portId: string): void {
    for (const [k, e] of this.#macs) if (e.portId === portId) this.#macs.delete(k);
  }

  #checkNewId(id: string): void {
    if (typeof id !== "string" || id.length === 0 || Buffer.byteLength(id) > 255) {
      throw new VnetError(
        "INVALID_ARGUMENT",
        `port and tunnel ids are 1..255 UTF-8 bytes, got ${JSON.stringify(id)}`,
      );
    }
    if (this.#ports.has(id) || this.#tunnels.has(id)) {
      throw new VnetError("DUPLICATE_PORT", `a port or tunnel named ${id} exists`, { portId: id });
    }
  }

  #port(id: string): VmPort {
    const p = this.#ports.get(id);
    if (p === undefined) throw new VnetError("UNKNOWN_PORT", `no port ${id}`, { portId: id });
    return p;
  }

  #tunnel(id: string): TunnelPort {
    const t = this.#tunnels.get(id);
    if (t === undefined) throw new VnetError("UNKNOWN_PORT", `no tunnel ${id}`, { tunnelId: id });
    return t;
  }
}
