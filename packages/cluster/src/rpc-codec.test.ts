import { describe, expect, it } from "vitest";
import { RpcError } from "./errors.js";
import { encodeRpcMessage, MAX_RPC_FRAME_BYTES, RpcDecoder, type RpcMessage } from "./rpc-codec.js";

const msgs: RpcMessage[] = [
  { type: "call", id: "c#1", method: "checkpoint", params: { epoch: 3 } },
  { type: "result", id: "c#1", value: { ok: true, list: [1, 2] } },
  { type: "error", id: "c#2", error: { name: "ClusterError", code: "EPOCH_ABORTED", message: "nope" } },
  { type: "error", id: null, error: { name: "RpcError", code: undefined, message: "bad frame" } },
  { type: "event", name: "progress", data: "é ✓" },
];

describe("RPC codec", () => {
  it("round-trips every message type, several per chunk", () => {
    const bytes = Buffer.concat(msgs.map(encodeRpcMessage));
    expect(new RpcDecoder().push(bytes)).toEqual(msgs);
  });

  it("decodes a stream split at every offset", () => {
    const bytes = Buffer.concat(msgs.map(encodeRpcMessage));
    for (let cut = 0; cut <= bytes.length; cut++) {
      const d = new RpcDecoder();
      const out = [...d.push(bytes.subarray(0, cut)), ...d.push(bytes.subarray(cut))];
      expect(out).toEqual(msgs);
      expect(d.pendingBytes).toBe(0);
    }
  });

  it("decodes byte by byte and keeps partial frames", () => {
    const bytes = encodeRpcMessage(msgs[0]!);
    const d = new RpcDecoder();
    const out: RpcMessage[] = [];
    for (const b of bytes) out.push(...d.push(Uint8Array.of(b)));
    expect(out).toEqual([msgs[0]]);
  });

  it("rejects zero and oversized lengths, non-JSON and bad shapes with RPC_PROTOCOL", () => {
    const frame = (payload: string): Buffer => {
      const p = Buffer.from(payload);
      const h = Buffer.alloc(4);
      h.writeUInt32BE(p.length);
      return Buffer.concat([h, p]);
    };
    const big = Buffer.alloc(4);
    big.writeUInt32BE(MAX_RPC_FRAME_BYTES + 1);
    for (const bad of [
      Buffer.alloc(4),
      big,
      frame("{not json"),
      frame("[]"),
      frame('{"type":"call","id":1,"method":"x"}'),
      frame('{"type":"result"}'),
      frame('{"type":"error","id":"c#1","error":{"message":"m"}}'),
      frame('{"type":"shout"}'),
    ]) {
      const err = (() => {
        try {
          new RpcDecoder().push(bad);
        } catch (e) {
          return e;
        }
      })();
      expect(RpcError.isInstance(err)).toBe(true);
      expect((err as RpcError).code).toBe("RPC_PROTOCOL");
    }
  });
});
