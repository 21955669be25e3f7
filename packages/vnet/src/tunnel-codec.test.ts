import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { TunnelAuthError } from "./errors.js";
import { FrameDecoder } from "./frame-codec.js";
import {
  decodeTunnelMessage,
  encodeTunnelFrame,
  encodeTunnelMark,
  TUNNEL_MAX_MESSAGE_BYTES,
  TunnelHandshake,
  type TunnelMessage,
} from "./tunnel-codec.js";

const secret = Buffer.from("cluster-secret-0123456789");

function decodeAll(bufs: Buffer[]): TunnelMessage[] {
  const dec = new FrameDecoder({ maxFrameBytes: TUNNEL_MAX_MESSAGE_BYTES });
  return dec.push(Buffer.concat(bufs)).map((b) => decodeTunnelMessage(b));
}

/** Runs a handshake between two state machines; returns the peer ids each side learned. */
function handshake(
  clientSecret: Uint8Array,
  serverSecret: Uint8Array,
): [string | undefined, string | undefined] {
  const client = new TunnelHandshake({
    role: "client",
    secret: clientSecret,
    switchId: "host-1",
    nonce: randomBytes(32),
  });
  const server = new TunnelHandshake({
    role: "server",
    secret: serverSecret,
    switchId: "host-2",
    nonce: randomBytes(32),
  });
  let toServer = client.start();
  let clientPeer: string | undefined;
  let serverPeer: string | undefined;
  while (toServer.length > 0) {
    const toClient: Buffer[] = [];
    for (const m of decodeAll(toServer)) {
      const step = server.receive(m);
      serverPeer ??= step.peerId;
      toClient.push(...step.send);
    }
    toServer = [];
    for (const m of decodeAll(toClient)) {
      const step = client.receive(m);
      clientPeer ??= step.peerId;
      toServer.push(...step.send);
    }
  }
  expect(client.done).toBe(clientPeer !== undefined);
  return [clientPeer, serverPeer];
}

describe("tunnel messages", () => {
  it("round-trips frames and marks with signed 64-bit epochs", () => {
    const frame = Uint8Array.from({ length: 1514 }, (_, i) => i & 0xff);
    const msgs = decodeAll([
      encodeTunnelFrame(-1, frame),
      encodeTunnelMark(2 ** 50 + 1),
      encodeTunnelFrame(3, frame.subarray(0, 14)),
    ]);
    expect(
      msgs.map((m) =>
        m.type === "frame" ? [m.type, m.epoch, m.frame.length] : [m.type, (m as { epoch: number }).epoch],
      ),
    ).toEqual([
      ["frame", -1, 1514],
      ["mark", 2 ** 50 + 1],
      ["frame", 3, 14],
    ]);
  });

  it("rejects unknown types and short bodies", () => {
    expect(() => decodeTunnelMessage(Uint8Array.of(0x7f))).toThrow(
      expect.objectContaining({ code: "BAD_MAGIC" }),
    );
    expect(() => decodeTunnelMessage(Uint8Array.of(0x11, 0))).toThrow(
      expect.objectContaining({ code: "FRAME_TOO_SHORT" }),
    );
  });
});

describe("TunnelHandshake", () => {
  it("authenticates both sides with the same secret and learns the peer ids", () => {
    expect(handshake(secret, secret)).toEqual(["host-2", "host-1"]);
  });

  it("the client rejects a server with another secret", () => {
    let err: unknown;
    try {
      handshake(secret, Buffer.from("another-secret-0123456789"));
    } catch (e) {
      err = e;
    }
    expect(TunnelAuthError.isInstance(err)).toBe(true);
    expect(err).toMatchObject({ code: "AUTH_FAILED", tunnelId: "host-2" });
  });

  it("the server rejects frames and proofs before hello, and short secrets are refused", () => {
    const server = new TunnelHandshake({ role: "server", secret, switchId: "s", nonce: randomBytes(32) });
    expect(() => server.receive({ type: "frame", epoch: 0, frame: new Uint8Array(14) })).toThrow(
      TunnelAuthError,
    );
    expect(() => server.receive({ type: "proof", mac: new Uint8Array(32) })).toThrow(TunnelAuthError);
    expect(
      () =>
        new TunnelHandshake({
          role: "client",
          secret: Buffer.from("short"),
          switchId: "c",
          nonce: randomBytes(32),
        }),
    ).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
  });

  it("the server rejects a client proof made for other nonces (replayed handshake)", () => {
    const server = new TunnelHandshake({ role: "server", secret, switchId: "s", nonce: randomBytes(32) });
    server.receive({ type: "hello", version: 1, role: "client", nonce: randomBytes(32), switchId: "c" });
    expect(() => server.receive({ type: "proof", mac: randomBytes(32) })).toThrow(
      expect.objectContaining({ code: "AUTH_FAILED" }),
    );
  });
});
