import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { RpcError } from "./errors.js";
import { RpcPeer } from "./rpc.js";
import { encodeRpcMessage } from "./rpc-codec.js";

function pair(handler?: (m: string, p: unknown) => Promise<unknown>) {
  const aToB = new PassThrough();
  const bToA = new PassThrough();
  const a = new RpcPeer(bToA, aToB, { idPrefix: "c#", peerId: "b" });
  const b = new RpcPeer(aToB, bToA, { idPrefix: "a#", ...(handler ? { handler } : {}) });
  return { a, b, aToB, bToA };
}

describe("RpcPeer", () => {
  it("matches concurrent replies to their calls by id, in any order", async () => {
    const { a } = pair(async (m, p) => {
      const { n } = p as { n: number };
      await new Promise((r) => setTimeout(r, 30 - n * 10));
      return `${m}:${n}`;
    });
    const r = await Promise.all([0, 1, 2].map((n) => a.call("echo", { n })));
    expect(r).toEqual(["echo:0", "echo:1", "echo:2"]);
    expect(a.pendingCount).toBe(0);
  });

  it("turns a thrown error into RPC_REMOTE with the remote name and code", async () => {
    const { a } = pair(async () => {
      const e = new Error("disk full") as Error & { code: string };
      e.name = "StoreIoError";
      e.code = "IO";
      throw e;
    });
    const err = await a.call("checkpoint").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect(err).toMatchObject({
      code: "RPC_REMOTE",
      method: "checkpoint",
      hostId: "b",
      remote: { name: "StoreIoError", code: "IO" },
    });
  });

  it("times out a call with RPC_TIMEOUT and drops the late reply", async () => {
    const { a } = pair(() => new Promise((r) => setTimeout(() => r("late"), 100)));
    await expect(a.call("slow", null, { timeoutMs: 20 })).rejects.toMatchObject({ code: "RPC_TIMEOUT" });
    await new Promise((r) => setTimeout(r, 150));
    expect(a.pendingCount).toBe(0);
  });

  it("rejects every pending call with RPC_INTERRUPTED when the stream ends, and later calls too", async () => {
    const { a, bToA } = pair(() => new Promise(() => undefined));
    const calls = [a.call("x"), a.call("y")];
    bToA.end();
    for (const c of calls) {
      const err = (await c.catch((e: unknown) => e)) as RpcError;
      expect(err.code).toBe("RPC_INTERRUPTED");
      expect(RpcError.isInstance(err.cause)).toBe(true);
    }
    expect(a.pendingCount).toBe(0);
    expect(a.state).toBe("closed");
    await expect(a.call("z")).rejects.toMatchObject({ code: "RPC_INTERRUPTED" });
  });

  it("closes on garbage from the peer, telling it with an id-less error", async () => {
    const { a, bToA, aToB } = pair(() => new Promise(() => undefined));
    const sent: Buffer[] = [];
    aToB.on("data", (d: Buffer) => sent.push(d));
    const pending = a.call("x");
    bToA.write(Buffer.from([0, 0, 0, 3, 0x7b, 0x7b, 0x7b]));
    await expect(pending).rejects.toMatchObject({ code: "RPC_INTERRUPTED" });
    expect((await a.closed).name).toBe("RpcError");
    expect(Buffer.concat(sent).toString()).toContain('"id":null');
  });

  it("ends on an id-less error from the peer and ignores replies to unknown ids", async () => {
    const { a, bToA } = pair(async () => "ok");
    bToA.write(encodeRpcMessage({ type: "result", id: "c#999", value: 1 }));
    expect(await a.call("ping")).toBe("ok");
    bToA.write(
      encodeRpcMessage({
        type: "error",
        id: null,
        error: { name: "RpcError", code: "RPC_PROTOCOL", message: "x" },
      }),
    );
    const reason = await a.closed;
    expect(reason).toMatchObject({ code: "RPC_PROTOCOL" });
  });

  it("delivers events", async () => {
    const got: unknown[] = [];
    const aToB = new PassThrough();
    const bToA = new PassThrough();
    new RpcPeer(bToA, aToB, { onEvent: (n, d) => got.push([n, d]) });
    const b = new RpcPeer(aToB, bToA);
    b.emit("progress", { step: 1 });
    await new Promise((r) => setImmediate(r));
    expect(got).toEqual([["progress", { step: 1 }]]);
  });
});
