/**
 * A framed RPC endpoint over any byte stream pair (an ssh2 exec channel on the controller, the
 * agent's stdin/stdout on the host). Both ends are the same class: each can call, serve and emit.
 * Ids carry a per-side prefix; replies to unknown ids are logged and dropped; an id-less error
 * from the peer is fatal; on close every pending call rejects with RPC_INTERRUPTED whose
 * `cause` is the close reason.
 */
import type { Readable, Writable } from "node:stream";
import { type Logger, silentLogger } from "@vpc/controller";
import { describeError, RpcError } from "./errors.js";
import { encodeRpcMessage, RpcDecoder, type RpcMessage } from "./rpc-codec.js";

export type RpcHandler = (method: string, params: unknown) => Promise<unknown>;

export interface RpcPeerOptions {
  /** Serves the peer's calls; without it every call is answered with an error. */
  readonly handler?: RpcHandler;
  readonly onEvent?: (name: string, data: unknown) => void;
  /** Prefix of the ids this side assigns (default "c#"). */
  readonly idPrefix?: string;
  /** Names this peer in errors (e.g. the host id). */
  readonly peerId?: string;
  readonly logger?: Logger;
}

interface Pending {
  readonly method: string;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
  readonly timer: NodeJS.Timeout | undefined;
}

export class RpcPeer {
  readonly #in: Readable;
  readonly #out: Writable;
  readonly #o: RpcPeerOptions;
  readonly #decoder = new RpcDecoder();
  readonly #pending = new Map<string, Pending>();
  #next = 0;
  #closeReason: Error | undefined;
  readonly #closed: Promise<Error>;
  #markClosed!: (e: Error) => void;

  constructor(input: Readable, output: Writable, options: RpcPeerOptions = {}) {
    this.#in = input;
    this.#out = output;
    this.#o = options;
    this.#closed = new Promise((r) => {
      this.#markClosed = r;
    });
    input.on("data", (chunk: Buffer) => this.#onData(chunk));
    input.on("end", () => this.close(this.#interrupted("peer closed the stream")));
    input.on("close", () => this.close(this.#interrupted("stream closed")));
    input.on("error", (e) => this.close(this.#interrupted("stream error", e)));
    output.on("error", (e) => this.close(this.#interrupted("write failed", e)));
  }

  get state(): "open" | "closed" {
    return this.#closeReason ? "closed" : "open";
  }

  /** Calls in flight. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Resolves with the reason once the peer is closed. */
  get closed(): Promise<Error> {
    return this.#closed;
  }

  call<T = unknown>(
    method: string,
    params: unknown = null,
    options: { timeoutMs?: number } = {},
  ): Promise<T> {
    if (this.#closeReason) {
      return Promise.reject(
        new RpcError("RPC_INTERRUPTED", `${method}: connection is closed`, {
          method,
          hostId: this.#o.peerId,
          cause: this.#closeReason,
        }),
      );
    }
    const id = `${this.#o.idPrefix ?? "c#"}${++this.#next}`;
    return new Promise<T>((resolve, reject) => {
      const timer =
        options.timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              this.#pending.delete(id);
              reject(
                new RpcError("RPC_TIMEOUT", `${method}: no reply within ${options.timeoutMs} ms`, {
                  method,
                  hostId: this.#o.peerId,
                }),
              );
            }, options.timeoutMs);
      this.#pending.set(id, { method, resolve: resolve as (v: unknown) => void, reject, timer });
      this.#send({ type: "call", id, method, params });
    });
  }

  emit(name: string, data: unknown): void {
    if (!this.#closeReason) this.#send({ type: "event", name, data });
  }

  /** Ends the endpoint; pending calls reject with RPC_INTERRUPTED (cause: `reason`). Idempotent. */
  close(reason: Error = this.#interrupted("closed locally")): void {
    if (this.#closeReason) return;
    this.#closeReason = reason;
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(
        new RpcError("RPC_INTERRUPTED", `${p.method}: interrupted: ${reason.message}`, {
          method: p.method,
          hostId: this.#o.peerId,
          cause: reason,
        }),
      );
      this.#pending.delete(id);
    }
    this.#in.removeAllListeners("data");
    this.#markClosed(reason);
  }

  #interrupted(message: string, cause?: unknown): RpcError {
    return new RpcError("RPC_INTERRUPTED", message, { hostId: this.#o.peerId, cause });
  }

  #send(msg: RpcMessage): void {
    try {
      this.#out.write(encodeRpcMessage(msg));
    } catch (e) {
      // Only a result too large to frame gets here: tell the caller instead of going silent.
      if (msg.type === "result")
        this.#out.write(encodeRpcMessage({ type: "error", id: msg.id, error: describeError(e) }));
      else throw e;
    }
  }

  #onData(chunk: Buffer): void {
    let messages: RpcMessage[];
    try {
      messages = this.#decoder.push(chunk);
    } catch (e) {
      this.#send({ type: "error", id: null, error: describeError(e) });
      this.close(e as Error);
      return;
    }
    for (const m of messages) this.#dispatch(m);
  }

  #dispatch(m: RpcMessage): void {
    const log = this.#o.logger ?? silentLogger;
    switch (m.type) {
      case "call":
        void this.#serve(m.id, m.method, m.params);
        return;
      case "event":
        this.#o.onEvent?.(m.name, m.data);
        return;
      case "result":
      case "error": {
        if (m.type === "error" && m.id === null) {
          this.close(
            new RpcError("RPC_PROTOCOL", `peer reported a protocol error: ${m.error.message}`, {
              hostId: this.#o.peerId,
              remote: m.error,
            }),
          );
          return;
        }
        const id = m.id as string;
        const p = this.#pending.get(id);
        if (!p) {
          log.log("warn", "rpc.unknown-id", { id: m.id, peer: this.#o.peerId });
          return;
        }
        this.#pending.delete(id);
        clearTimeout(p.timer);
        if (m.type === "result") p.resolve(m.value);
        else
          p.reject(
            new RpcError("RPC_REMOTE", `${p.method}: ${m.error.name}: ${m.error.message}`, {
              method: p.method,
              hostId: this.#o.peerId,
              remote: m.error,
            }),
          );
        return;
      }
    }
  }

  async #serve(id: string, method: string, params: unknown): Promise<void> {
    try {
      if (!this.#o.handler) throw new RpcError("RPC_REMOTE", `no handler for ${method}`, { method });
      const value = await this.#o.handler(method, params);
      if (!this.#closeReason) this.#send({ type: "result", id, value: value ?? null });
    } catch (e) {
      if (!this.#closeReason) this.#send({ type: "error", id, error: describeError(e) });
    }
  }
}
