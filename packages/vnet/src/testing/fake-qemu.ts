import { createConnection, type Socket } from "node:net";
import { encodeFrame, FrameDecoder } from "../frame-codec.js";

/**
 * Stands in for QEMU's `-netdev stream,server=off` end: connects to a switch port's unix socket,
 * sends and receives frames with the 4-byte length framing. Received frames queue until read.
 */
export class FakeQemu {
  readonly socket: Socket;
  readonly #queue: Uint8Array[] = [];
  #wake: (() => void) | undefined;
  #closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    const decoder = new FrameDecoder();
    socket.on("data", (chunk: Buffer) => {
      for (const f of decoder.push(chunk)) this.#queue.push(new Uint8Array(f));
      this.#wake?.();
    });
    socket.on("close", () => {
      this.#closed = true;
      this.#wake?.();
    });
    socket.on("error", () => undefined);
  }

  static connect(path: string): Promise<FakeQemu> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ path });
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve(new FakeQemu(socket));
      });
    });
  }

  send(frame: Uint8Array): void {
    this.socket.write(encodeFrame(frame));
  }

  /** Frames received and not read yet. */
  get pending(): number {
    return this.#queue.length;
  }

  /** The next received frame; rejects after `timeoutMs` or if the switch hangs up first. */
  async next(timeoutMs = 5000): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.#queue.shift();
      if (f !== undefined) return f;
      if (this.#closed) throw new Error("connection closed");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  /** Resolves once nothing arrived for `ms` (to check a frame is held, not merely slow). */
  async quiet(ms = 100): Promise<number> {
    await new Promise((r) => setTimeout(r, ms));
    return this.#queue.length;
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once("close", () => resolve());
      this.socket.destroy();
    });
  }
}
