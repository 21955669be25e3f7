import { randomBytes } from "node:crypto";
import { lstat, unlink } from "node:fs/promises";
import { createConnection, createServer, isIP, type Server, type Socket } from "node:net";
import { type ChannelLog, decodeChannelLog, encodeChannelLog } from "./channel-log.js";
import { VnetError } from "./errors.js";
import { encodeFrames, FrameDecoder, QEMU_MAX_FRAME_BYTES } from "./frame-codec.js";
import { EventHub, type EventListener } from "./internal/events.js";
import { unreadBytes } from "./internal/unread-bytes.js";
import {
  type PortInfo,
  type SwitchAction,
  SwitchCore,
  type SwitchCoreOptions,
  type SwitchCounters,
} from "./switch-core.js";
import {
  decodeTunnelMessage,
  encodeTunnelFrame,
  encodeTunnelMark,
  TUNNEL_MAX_MESSAGE_BYTES,
  TunnelHandshake,
} from "./tunnel-codec.js";

/**
 * The socket adapter around SwitchCore: one unix socket per VM port for QEMU's
 * `-netdev stream,server=off,addr.type=unix,addr.path=PATH`, authenticated TCP tunnels to other
 * switches, and the checkpoint API (beginCheckpoint, channelLog, replay) for the host agent.
 */

export interface VnetSwitchOptions extends SwitchCoreOptions {
  /** This switch's name on tunnels (e.g. the host name). Default "vnet". */
  switchId?: string;
  /** Per-cluster secret (>= 16 bytes) for tunnel authentication; required to listen or connect. */
  secret?: Uint8Array | string;
  /** Largest frame accepted from QEMU. Default QEMU_MAX_FRAME_BYTES. */
  maxFrameBytes?: number;
  /** Queued output bytes per connection above which the sending connection is paused. Default 1 MiB. */
  highWaterBytes?: number;
  /** Queued output bytes above which frames to that connection are dropped. Default 8 MiB. */
  dropBytes?: number;
  /** How often learned MACs past their ageing time are swept. Default 60 s. */
  macSweepMs?: number;
  /** Tunnel handshake timeout. Default 5 s. */
  handshakeTimeoutMs?: number;
  /**
   * How long a checkpoint waits, before it stops the VM, for QEMU to read the frames already
   * written to it. Past it the checkpoint goes on and counts `unreadAtStop`. Default 2000 ms.
   */
  deliveryTimeoutMs?: number;
  /** Bytes written to a connection that its peer has not read (default: the kernel's count via `ss`). */
  unreadBytes?: (socket: Socket) => Promise<number>;
}

export interface AddPortOptions {
  id: string;
  /** Unix socket path QEMU connects to (created here; a stale socket file is replaced). */
  path: string;
  /** Epoch of the VM behind the port. */
  epoch: number;
}

export interface ListenOptions {
  /** Default 127.0.0.1. Any other address needs the peers to pass the handshake, as always. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
}

export interface ConnectTunnelOptions {
  host: string;
  port: number;
  /** Delay before reconnecting after the tunnel drops. Default 500 ms. */
  retryMs?: number;
}

export type VnetEvent =
  | { type: "port-connected"; portId: string }
  | { type: "port-disconnected"; portId: string }
  | { type: "port-error"; portId: string; error: Error }
  | { type: "tunnel-up"; tunnelId: string; remote: string }
  | { type: "tunnel-down"; tunnelId: string; remote: string }
  | { type: "tunnel-rejected"; remote: string; error: Error };

/**
 * Frames the switch lost, by cause (cumulative since the switch started). Any of them breaks
 * exactly-once delivery: a checkpoint during which one of these rose must not be committed.
 */
export interface DropCounters {
  /** Held frames dropped because the port's hold queue was full (`maxHeldFramesPerPort`). */
  heldOverflow: number;
  /** Frames not queued because the VM or tunnel connection had over `dropBytes` queued. */
  queueOverflow: number;
  /** Frames for a port whose QEMU was not connected. */
  noQemu: number;
  /** Frames that should have gone into a channel log already taken (`lateFrames`). */
  lateForLog: number;
  /**
   * Checkpoints whose VM stopped while QEMU had not read every frame written to it (it did not
   * within `deliveryTimeoutMs`): those frames are in neither the checkpoint nor its channel log.
   */
  unreadAtStop: number;
  total: number;
}

export interface PortStats extends PortInfo {
  connected: boolean;
  /** Frames dropped because QEMU was not connected or its queue was over `dropBytes`. */
  unsentFrames: number;
  /** Checkpoints of this port that counted `unreadAtStop`. */
  unreadAtStop: number;
}

export interface TunnelStats {
  id: string;
  remote: string;
  remoteMark: number | undefined;
  unsentFrames: number;
}

export interface SwitchStats {
  ports: PortStats[];
  tunnels: TunnelStats[];
  counters: SwitchCounters;
  drops: DropCounters;
}

/** One accepted socket (QEMU or tunnel peer), with its batch of output for the current turn. */
interface Conn {
  kind: "vm" | "tunnel";
  socket: Socket;
  out: Uint8Array[];
  /** Connections paused until this one drains. */
  blocked: Set<Conn>;
  unsent: number;
  /** Bytes read from the socket so far (a checkpoint reads until a poll phase adds none). */
  readBytes: number;
  /** While its VM is being checkpointed, a port's socket is read regardless of backpressure. */
  keepReading: boolean;
  /** Frames written since the peer was last seen to have read everything. */
  writtenSinceEmpty: number;
}

interface PortState {
  id: string;
  path: string;
  server: Server;
  conn: Conn | undefined;
  /** Replayed frames waiting for QEMU to connect. */
  replay: Uint8Array[];
  /**
   * Frames switched to the port while no QEMU was connected (a VM still booting or being
   * restored while the others already run), sent after the replay when it connects; up to
   * `dropBytes`, beyond which they are dropped (`noQemu`).
   */
  waiting: Uint8Array[];
  waitingBytes: number;
  unsent: number;
  unreadAtStop: number;
}

interface TunnelState {
  id: string;
  remote: string;
  conn: Conn;
}

interface Waiter {
  portId: string;
  epoch: number;
  resolve: (blob: Buffer) => void;
  reject: (e: unknown) => void;
  timer: NodeJS.Timeout;
}

const LOOPBACK = "127.0.0.1";

export class VnetSwitch {
  readonly switchId: string;
  readonly #core: SwitchCore;
  readonly #secret: Buffer | undefined;
  readonly #maxFrameBytes: number;
  readonly #highWater: number;
  readonly #dropBytes: number;
  readonly #handshakeMs: number;
  readonly #deliveryTimeoutMs: number;
  readonly #unreadBytes: (socket: Socket) => Promise<number>;
  readonly #drops = { queueOverflow: 0, noQemu: 0, unreadAtStop: 0 };
  readonly #ports = new Map<string, PortState>();
  readonly #tunnels = new Map<string, TunnelState>();
  readonly #servers = new Set<Server>();
  readonly #sockets = new Set<Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #waiters = new Set<Waiter>();
  readonly #events = new EventHub<VnetEvent>();
  readonly #dirty = new Set<Conn>();
  /** Connections paused because held or flipping frames passed `highWaterBytes` (see #holdPressure). */
  readonly #holdBlocked = new Set<Conn>();
  readonly #sweep: NodeJS.Timeout;
  #closed = false;

  constructor(options: VnetSwitchOptions = {}) {
    this.switchId = options.switchId ?? "vnet";
    this.#core = new SwitchCore(options);
    this.#secret = options.secret === undefined ? undefined : Buffer.from(options.secret);
    if (this.#secret !== undefined && this.#secret.length < 16) {
      throw new VnetError("INVALID_ARGUMENT", "the cluster secret must be at least 16 bytes");
    }
    this.#maxFrameBytes = options.maxFrameBytes ?? QEMU_MAX_FRAME_BYTES;
    this.#highWater = options.highWaterBytes ?? 1 << 20;
    this.#dropBytes = options.dropBytes ?? 8 << 20;
    this.#handshakeMs = options.handshakeTimeoutMs ?? 5000;
    this.#deliveryTimeoutMs = options.deliveryTimeoutMs ?? 2000;
    this.#unreadBytes = options.unreadBytes ?? unreadBytes;
    this.#sweep = setInterval(() => this.#core.expireMacs(), options.macSweepMs ?? 60_000);
    this.#sweep.unref();
  }

  // ---- VM ports ----------------------------------------------------------------------------

  /** Listens on `path` for the VM's QEMU; the port exists (and is coloured) from now on. */
  async addPort(options: AddPortOptions): Promise<void> {
    this.#checkOpen();
    const { id, path, epoch } = options;
    if (this.#ports.has(id)) throw new VnetError("DUPLICATE_PORT", `port ${id} exists`, { portId: id });
    await removeStaleSocket(path);
    this.#core.addPort(id, epoch);
    const server = createServer((socket) => this.#acceptQemu(id, socket));
    const port: PortState = {
      id,
      path,
      server,
      conn: undefined,
      replay: [],
      waiting: [],
      waitingBytes: 0,
      unsent: 0,
      unreadAtStop: 0,
    };
    this.#ports.set(id, port);
    this.#servers.add(server);
    try {
      await listen(server, { path });
    } catch (cause) {
      this.#ports.delete(id);
      this.#servers.delete(server);
      this.#run(this.#core.removePort(id));
      throw new VnetError("IO_ERROR", `cannot listen on ${path}`, { portId: id, path, op: "listen", cause });
    }
  }

  async removePort(id: string): Promise<void> {
    const port = this.#port(id);
    this.#ports.delete(id);
    port.conn?.socket.destroy();
    await closeServer(port.server);
    this.#servers.delete(port.server);
    await unlink(port.path).catch(() => undefined);
    this.#run(this.#core.removePort(id));
    this.#releaseHoldBlocked();
    this.#checkWaiters();
  }

  /**
   * Checkpoint step for one VM, atomic with respect to forwarding. The cut is defined by what QEMU
   * read and wrote, not by event-loop turns:
   * - receive side: nothing more is written to the port; before `pause()` the switch waits until
   *   QEMU has read every frame already written (the kernel's send queue is empty), so each of
   *   them is in the guest (hence in its checkpoint) and every later one waits for the flip and is
   *   logged. If QEMU does not read them within `deliveryTimeoutMs` (a guest that does not drain
   *   its receive ring), the checkpoint goes on and counts `unreadAtStop`;
   * - send side: the port's socket is read regardless of backpressure, so QEMU's flush of its own
   *   queue when it stops finds room; `pause()` stops the VM (QMP `stop` returns after that flush);
   *   then the socket is read until a poll of the event loop finds it empty. Everything read up to
   *   there was sent before the stop and keeps the old colour;
   * then the port flips to `epoch` and held frames that are now deliverable go out. If `pause`
   * throws, the flip is undone and the error rethrown.
   */
  async beginCheckpoint(portId: string, epoch: number, pause: () => Promise<void>): Promise<void> {
    this.#checkOpen();
    const port = this.#port(portId);
    this.#core.beginFlip(portId, epoch);
    try {
      const delivered = await this.#awaitRead(port);
      // Room in the socket for QEMU's flush at `stop`; from here the port is read unpaused.
      await this.#keepReading(port);
      await pause();
      await this.#readUntilEmpty(port);
      if (!delivered) {
        port.unreadAtStop++;
        this.#drops.unreadAtStop++;
      }
    } catch (e) {
      if (this.#core.hasPort(portId)) this.#run(this.#core.abortFlip(portId));
      this.#releaseHoldBlocked();
      throw e;
    } finally {
      if (port.conn !== undefined) port.conn.keepReading = false;
    }
    this.#run(this.#core.completeFlip(portId));
    this.#releaseHoldBlocked();
    this.#checkWaiters();
  }

  /** Flips a port whose VM the caller has already paused (or that has no VM running). */
  flipEpoch(portId: string, epoch: number): void {
    this.#checkOpen();
    this.#run(this.#core.flip(portId, epoch));
    this.#releaseHoldBlocked();
    this.#checkWaiters();
  }

  /**
   * The channel log blob (FORMAT.md) of the port for `epoch`, once it is complete (every local port
   * flipped and every tunnel peer's mark reached `epoch`). Rejects with TIMEOUT after `timeoutMs`.
   */
  async channelLog(portId: string, epoch: number, options: { timeoutMs?: number } = {}): Promise<Buffer> {
    this.#checkOpen();
    this.#port(portId);
    if (this.#core.channelLogComplete(portId, epoch)) return this.#takeLog(portId, epoch);
    return new Promise((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? 10_000;
      const waiter: Waiter = {
        portId,
        epoch,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(waiter);
          reject(
            new VnetError(
              "TIMEOUT",
              `channel log of ${portId} epoch ${epoch} not complete after ${timeoutMs} ms`,
              {
                portId,
                epoch,
              },
            ),
          );
        }, timeoutMs),
      };
      this.#waiters.add(waiter);
    });
  }

  /**
   * Re-delivers a restored channel log to the port: written now if QEMU is connected, else as
   * soon as it connects (before any other frame). Returns the number of frames.
   */
  replay(portId: string, log: Uint8Array | ChannelLog): number {
    this.#checkOpen();
    const port = this.#port(portId);
    const records = log instanceof Uint8Array ? decodeChannelLog(log).records : log.records;
    const actions = this.#core.replay(portId, records);
    if (port.conn === undefined) {
      for (const a of actions) if (a.type === "deliver") port.replay.push(a.frame);
    } else {
      this.#run(actions);
    }
    return records.length;
  }

  /** Whole-cluster restore: every port to `epoch`, held frames and logs dropped (see SwitchCore.reset). */
  reset(epoch: number): void {
    this.#checkOpen();
    for (const p of this.#ports.values()) {
      p.replay = [];
      p.waiting = [];
      p.waitingBytes = 0;
    }
    this.#run(this.#core.reset(epoch));
    this.#releaseHoldBlocked();
  }

  // ---- tunnels -----------------------------------------------------------------------------

  /** Accepts tunnels from other switches (authenticated with the cluster secret). */
  async listen(options: ListenOptions = {}): Promise<{ host: string; port: number }> {
    this.#checkOpen();
    const secret = this.#requireSecret();
    const host = options.host ?? LOOPBACK;
    const server = createServer((socket) => this.#startTunnel(socket, "server", secret, undefined));
    this.#servers.add(server);
    try {
      await listen(server, { host, port: options.port ?? 0 });
    } catch (cause) {
      this.#servers.delete(server);
      throw new VnetError("IO_ERROR", `cannot listen on ${host}:${options.port ?? 0}`, {
        op: "listen",
        cause,
      });
    }
    const addr = server.address();
    if (addr === null || typeof addr === "string")
      throw new VnetError("IO_ERROR", "no TCP address", { op: "listen" });
    return { host: addr.address, port: addr.port };
  }

  /**
   * Connects a tunnel to another switch's `listen` address; resolves with the peer's switch id
   * once authenticated. If the tunnel drops later, it is re-established every `retryMs` until close.
   */
  connectTunnel(options: ConnectTunnelOptions): Promise<string> {
    this.#checkOpen();
    const secret = this.#requireSecret();
    if (isIP(options.host) === 0 && options.host !== "localhost") {
      throw new VnetError("INVALID_ARGUMENT", `tunnel host must be an IP address, got ${options.host}`);
    }
    return new Promise((resolve, reject) => {
      let settled = false;
      let gaveUp = false;
      const attempt = () => {
        if (this.#closed) return;
        const socket = createConnection({ host: options.host, port: options.port });
        this.#startTunnel(socket, "client", secret, (result) => {
          if (settled) return;
          settled = true;
          if (result instanceof Error) {
            gaveUp = true;
            reject(result);
          } else {
            resolve(result);
          }
        });
        socket.once("close", () => {
          if (this.#closed || gaveUp) return;
          const t = setTimeout(() => {
            this.#timers.delete(t);
            attempt();
          }, options.retryMs ?? 500);
          this.#timers.add(t);
        });
      };
      attempt();
    });
  }

  // ---- observation and shutdown -----------------------------------------------------------

  /** A listener-owned event stream; pass types to filter. Ends when closed or the switch closes. */
  events(
    types?: readonly VnetEvent["type"][],
    predicate?: (e: VnetEvent) => boolean,
  ): EventListener<VnetEvent> {
    return this.#events.listen(types, predicate);
  }

  stats(): SwitchStats {
    return {
      ports: [...this.#ports.values()].map((p) => ({
        ...this.#core.portInfo(p.id),
        connected: p.conn !== undefined,
        unsentFrames: p.unsent,
        unreadAtStop: p.unreadAtStop,
      })),
      tunnels: [...this.#tunnels.values()].map((t) => ({
        id: t.id,
        remote: t.remote,
        remoteMark: this.#core.remoteMark(t.id),
        unsentFrames: t.conn.unsent,
      })),
      counters: this.#core.counters(),
      drops: this.drops(),
    };
  }

  /** Frames lost so far, by cause (see DropCounters). */
  drops(): DropCounters {
    const c = this.#core.counters();
    const d = {
      heldOverflow: c.heldDroppedFrames,
      queueOverflow: this.#drops.queueOverflow,
      noQemu: this.#drops.noQemu,
      lateForLog: c.lateFrames,
      unreadAtStop: this.#drops.unreadAtStop,
    };
    return { ...d, total: d.heldOverflow + d.queueOverflow + d.noQemu + d.lateForLog + d.unreadAtStop };
  }

  /** Closes every socket and listener, removes the port socket files, fails pending waits with CLOSED. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweep);
    for (const t of this.#timers) clearTimeout(t);
    for (const w of this.#waiters) {
      clearTimeout(w.timer);
      w.reject(new VnetError("CLOSED", "switch closed", { portId: w.portId, epoch: w.epoch }));
    }
    this.#waiters.clear();
    for (const s of this.#sockets) s.destroy();
    await Promise.all([...this.#servers].map(closeServer));
    await Promise.all([...this.#ports.values()].map((p) => unlink(p.path).catch(() => undefined)));
    this.#events.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- internals ---------------------------------------------------------------------------

  #acceptQemu(portId: string, socket: Socket): void {
    const port = this.#ports.get(portId);
    if (port === undefined || this.#closed) {
      socket.destroy();
      return;
    }
    // A restored QEMU reconnects while the old connection may not have noticed it is dead yet.
    port.conn?.socket.destroy();
    const conn = this.#track(socket, "vm");
    port.conn = conn;
    const decoder = new FrameDecoder({ maxFrameBytes: this.#maxFrameBytes });
    socket.on("data", (chunk: Buffer) => {
      if (!this.#core.hasPort(portId)) return;
      conn.readBytes += chunk.length;
      let frames: Uint8Array[];
      try {
        frames = decoder.push(chunk);
      } catch (error) {
        this.#events.emit({ type: "port-error", portId, error: error as Error });
        socket.destroy();
        return;
      }
      for (const f of frames) this.#run(this.#core.fromPort(portId, f), conn);
      this.#holdPressure(conn);
      this.#flush();
    });
    socket.on("close", () => {
      if (port.conn !== conn) return;
      port.conn = undefined;
      this.#events.emit({ type: "port-disconnected", portId });
    });
    if (port.replay.length > 0 || port.waiting.length > 0) {
      conn.out.push(...port.replay, ...port.waiting);
      port.replay = [];
      port.waiting = [];
      port.waitingBytes = 0;
      this.#dirty.add(conn);
      this.#flushVm(conn);
    }
    this.#events.emit({ type: "port-connected", portId });
  }

  #startTunnel(
    socket: Socket,
    role: "client" | "server",
    secret: Buffer,
    done: ((result: string | Error) => void) | undefined,
  ): void {
    const conn = this.#track(socket, "tunnel");
    socket.setNoDelay(true);
    const remote = `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`;
    const hs = new TunnelHandshake({ role, secret, switchId: this.switchId, nonce: randomBytes(32) });
    const decoder = new FrameDecoder({ maxFrameBytes: TUNNEL_MAX_MESSAGE_BYTES });
    let tunnel: TunnelState | undefined;
    let failed = false;
    const fail = (error: Error) => {
      if (failed) return;
      failed = true;
      clearTimeout(timer);
      if (tunnel === undefined) {
        this.#events.emit({ type: "tunnel-rejected", remote, error });
        done?.(error);
      }
      socket.destroy();
    };
    const timer = setTimeout(
      () =>
        fail(new VnetError("TIMEOUT", `tunnel handshake with ${remote} took over ${this.#handshakeMs} ms`)),
      this.#handshakeMs,
    );
    if (role === "client") socket.once("connect", () => socket.write(Buffer.concat(hs.start())));
    socket.on("error", (cause) =>
      fail(new VnetError("IO_ERROR", `tunnel ${remote}: ${cause.message}`, { cause })),
    );
    socket.on("data", (chunk: Buffer) => {
      try {
        for (const body of decoder.push(chunk)) {
          const msg = decodeTunnelMessage(body, decoder.offset);
          if (tunnel === undefined) {
            const step = hs.receive(msg);
            if (step.send.length > 0) socket.write(Buffer.concat(step.send));
            if (step.peerId !== undefined) {
              clearTimeout(timer);
              tunnel = this.#openTunnel(step.peerId, remote, conn);
              done?.(step.peerId);
            }
          } else if (msg.type === "frame") {
            this.#run(this.#core.fromTunnel(tunnel.id, msg.epoch, msg.frame), conn);
            this.#holdPressure(conn);
          } else if (msg.type === "mark") {
            this.#core.markFromTunnel(tunnel.id, msg.epoch);
            this.#checkWaiters();
          } else {
            throw new VnetError("BAD_STATE", `unexpected ${msg.type} on an open tunnel`, {
              tunnelId: tunnel.id,
            });
          }
        }
      } catch (error) {
        fail(error as Error);
      }
      this.#flush();
    });
    socket.on("close", () => {
      clearTimeout(timer);
      if (tunnel === undefined) {
        if (!failed) fail(new VnetError("IO_ERROR", `tunnel ${remote} closed during the handshake`));
        return;
      }
      if (this.#tunnels.get(tunnel.id) !== tunnel) return;
      this.#tunnels.delete(tunnel.id);
      this.#core.removeTunnel(tunnel.id);
      this.#checkWaiters();
      this.#events.emit({ type: "tunnel-down", tunnelId: tunnel.id, remote });
    });
  }

  #openTunnel(peerId: string, remote: string, conn: Conn): TunnelState {
    const old = this.#tunnels.get(peerId);
    if (old !== undefined) {
      // The peer reconnected before we noticed its old connection died.
      this.#tunnels.delete(peerId);
      this.#core.removeTunnel(peerId);
      old.conn.socket.destroy();
    }
    const tunnel: TunnelState = { id: peerId, remote, conn };
    this.#tunnels.set(peerId, tunnel);
    this.#run(this.#core.addTunnel(peerId));
    this.#flush();
    this.#events.emit({ type: "tunnel-up", tunnelId: peerId, remote });
    return tunnel;
  }

  /** Queues the actions' output on their connections; `source` is paused if a target backs up. */
  #run(actions: SwitchAction[], source?: Conn): void {
    for (const a of actions) {
      let target: Conn | undefined;
      let bytes: Uint8Array;
      let port: PortState | undefined;
      if (a.type === "deliver") {
        port = this.#ports.get(a.portId);
        target = port?.conn;
        bytes = a.frame;
        if (port !== undefined && target === undefined) {
          if (port.waitingBytes + bytes.length <= this.#dropBytes) {
            port.waiting.push(bytes.slice());
            port.waitingBytes += bytes.length;
          } else {
            port.unsent++;
            this.#drops.noQemu++;
          }
        }
      } else {
        target = this.#tunnels.get(a.tunnelId)?.conn;
        bytes = a.type === "tunnel-frame" ? encodeTunnelFrame(a.epoch, a.frame) : encodeTunnelMark(a.epoch);
      }
      if (target === undefined) continue;
      if (target.socket.writableLength > this.#dropBytes) {
        target.unsent++;
        if (port !== undefined) port.unsent++;
        this.#drops.queueOverflow++;
        continue;
      }
      target.out.push(bytes);
      target.writtenSinceEmpty++;
      this.#dirty.add(target);
      if (
        source !== undefined &&
        target !== source &&
        !source.keepReading &&
        target.socket.writableLength > this.#highWater
      ) {
        if (!target.blocked.has(source)) {
          target.blocked.add(source);
          source.socket.pause();
        }
      }
    }
    if (source === undefined) this.#flush();
  }

  /** One write per connection per turn (per chunk read, or per checkpoint step). */
  #flush(): void {
    for (const conn of this.#dirty) {
      if (conn.kind === "tunnel") {
        // Tunnel messages are already framed: one concatenated write beats a writev of tiny buffers.
        if (conn.out.length > 0)
          conn.socket.write(conn.out.length === 1 ? conn.out[0]! : Buffer.concat(conn.out));
        conn.out = [];
      } else {
        this.#flushVm(conn);
      }
    }
    this.#dirty.clear();
  }

  #flushVm(conn: Conn): void {
    if (conn.out.length > 0) conn.socket.write(encodeFrames(conn.out));
    conn.out = [];
  }

  #track(socket: Socket, kind: Conn["kind"]): Conn {
    const conn: Conn = {
      kind,
      socket,
      out: [],
      blocked: new Set(),
      unsent: 0,
      readBytes: 0,
      keepReading: false,
      writtenSinceEmpty: 0,
    };
    this.#sockets.add(socket);
    const unblock = () => {
      for (const s of conn.blocked) s.socket.resume();
      conn.blocked.clear();
    };
    socket.on("drain", unblock);
    socket.on("error", () => undefined); // reported through "close"; a reset peer is routine
    socket.on("close", () => {
      this.#sockets.delete(socket);
      this.#dirty.delete(conn);
      this.#holdBlocked.delete(conn);
      unblock();
    });
    return conn;
  }

  /**
   * Frames that wait inside the switch (held for a port, or sent by a flipping port) are not on
   * any connection, so they do not pause their sender through `highWaterBytes`; past it they
   * would overflow the hold queue, or `dropBytes` when released all at once. So: once any port
   * has more than `highWaterBytes` waiting, the connection that just delivered is paused until a
   * flip ends (then it resumes, and is paused again if still needed).
   */
  #holdPressure(source: Conn): void {
    if (source.keepReading || this.#holdBlocked.has(source)) return;
    for (const p of this.#core.ports()) {
      if (p.heldBytes + p.ingressBytes > this.#highWater) {
        this.#holdBlocked.add(source);
        source.socket.pause();
        return;
      }
    }
  }

  #releaseHoldBlocked(): void {
    for (const c of this.#holdBlocked) c.socket.resume();
    this.#holdBlocked.clear();
  }

  /** Reads the port's socket from now on regardless of backpressure, and lets one poll phase run. */
  async #keepReading(port: PortState): Promise<void> {
    const conn = port.conn;
    if (conn === undefined) return;
    conn.keepReading = true;
    conn.socket.resume();
    for (let i = 0; i < 2; i++) await new Promise<void>((r) => setImmediate(r));
  }

  /**
   * Reads the port's socket, backpressure or not, until one whole poll phase of the event loop
   * reads nothing from it (epoll is level-triggered: a socket with data would have been read).
   * Setting `keepReading` also keeps the socket from being paused again until the flip ends.
   */
  async #readUntilEmpty(port: PortState): Promise<void> {
    const turn = () => new Promise<void>((r) => setImmediate(r));
    let conn = port.conn;
    if (conn === undefined) return;
    conn.keepReading = true;
    conn.socket.resume();
    await turn(); // now in the check phase: each further turn spans exactly one poll phase
    for (;;) {
      const before = conn.readBytes;
      await turn();
      if (port.conn !== conn) {
        // QEMU reconnected (a restored VM) during the checkpoint: read the new connection instead.
        conn = port.conn;
        if (conn === undefined) return;
        conn.keepReading = true;
        conn.socket.resume();
        continue;
      }
      if (conn.readBytes === before && conn.socket.readableLength === 0) return;
    }
  }

  /**
   * Waits until QEMU has read everything written to the port: our queue flushed to the kernel and
   * the kernel's send queue empty. False if that did not happen within `deliveryTimeoutMs`.
   */
  async #awaitRead(port: PortState): Promise<boolean> {
    const deadline = performance.now() + this.#deliveryTimeoutMs;
    const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
    for (let wait = 1; ; wait = Math.min(wait * 2, 50)) {
      const conn = port.conn;
      if (conn === undefined || conn.socket.destroyed) return true; // nothing can be read any more
      if (conn.out.length === 0 && conn.socket.writableLength === 0) {
        if (conn.writtenSinceEmpty === 0) return true;
        const written = conn.writtenSinceEmpty;
        if ((await this.#unreadBytes(conn.socket)) === 0) {
          conn.writtenSinceEmpty -= written;
          return true;
        }
      }
      if (performance.now() >= deadline) return false;
      await sleep(wait);
    }
  }

  #takeLog(portId: string, epoch: number): Buffer {
    return encodeChannelLog({ epoch, records: this.#core.takeChannelLog(portId, epoch) });
  }

  #checkWaiters(): void {
    for (const w of this.#waiters) {
      if (!this.#core.hasPort(w.portId)) {
        this.#waiters.delete(w);
        clearTimeout(w.timer);
        w.reject(
          new VnetError("UNKNOWN_PORT", `port ${w.portId} was removed`, { portId: w.portId, epoch: w.epoch }),
        );
      } else if (this.#core.channelLogComplete(w.portId, w.epoch)) {
        this.#waiters.delete(w);
        clearTimeout(w.timer);
        try {
          w.resolve(this.#takeLog(w.portId, w.epoch));
        } catch (e) {
          w.reject(e);
        }
      }
    }
  }

  #requireSecret(): Buffer {
    if (this.#secret === undefined) {
      throw new VnetError("INVALID_ARGUMENT", "tunnels need the cluster `secret` option");
    }
    return this.#secret;
  }

  #port(id: string): PortState {
    const p = this.#ports.get(id);
    if (p === undefined) throw new VnetError("UNKNOWN_PORT", `no port ${id}`, { portId: id });
    return p;
  }

  #checkOpen(): void {
    if (this.#closed) throw new VnetError("CLOSED", "switch closed", { state: "closed" });
  }
}

function listen(server: Server, opts: { path: string } | { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Removes `path` if it is a socket (left by a crashed switch); refuses to remove anything else. */
async function removeStaleSocket(path: string): Promise<void> {
  let st: Awaited<ReturnType<typeof lstat>>;
  try {
    st = await lstat(path);
  } catch {
    return;
  }
  if (!st.isSocket()) {
    throw new VnetError("IO_ERROR", `${path} exists and is not a socket`, { path, op: "listen" });
  }
  await unlink(path);
}
