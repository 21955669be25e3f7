import { createHmac, timingSafeEqual } from "node:crypto";
import { FrameFormatError, TunnelAuthError, VnetError } from "./errors.js";
import { LENGTH_PREFIX_BYTES, QEMU_MAX_FRAME_BYTES } from "./frame-codec.js";
import { asBuffer, readI64BE, writeI64BE } from "./internal/int64.js";

/**
 * Messages between two switches over one TCP connection (FORMAT.md §2). Same outer framing as
 * QEMU (4-byte big-endian length, then the body); the body starts with a type byte.
 *
 * Authentication is a mutual challenge-response at connection setup with the per-cluster secret
 * (HMAC-SHA256 over both nonces and both switch ids), so neither side forwards a frame before the
 * peer has proved it knows the secret, and a recorded handshake cannot be replayed (fresh nonces).
 * After the handshake frames are not MACed or encrypted: the fabric between host agents is trusted
 * not to inject into or read an established TCP stream.
 */

export const TUNNEL_PROTOCOL_VERSION = 1;
export const NONCE_BYTES = 32;
const MAC_BYTES = 32;
const EPOCH_BYTES = 8;

export const MSG_HELLO = 0x01;
export const MSG_PROOF = 0x02;
export const MSG_FRAME = 0x10;
export const MSG_MARK = 0x11;

/** Largest tunnel message body: a type byte, an epoch and a QEMU-sized frame. */
export const TUNNEL_MAX_MESSAGE_BYTES = 1 + EPOCH_BYTES + QEMU_MAX_FRAME_BYTES;

export type TunnelMessage =
  | { type: "hello"; version: number; role: "client" | "server"; nonce: Uint8Array; switchId: string }
  | { type: "proof"; mac: Uint8Array }
  | { type: "frame"; epoch: number; frame: Uint8Array }
  | { type: "mark"; epoch: number };

function message(type: number, bodyBytes: number): Buffer {
  const out = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES + 1 + bodyBytes);
  out.writeUInt32BE(1 + bodyBytes, 0);
  out[LENGTH_PREFIX_BYTES] = type;
  return out;
}

export function encodeTunnelFrame(epoch: number, frame: Uint8Array): Buffer {
  const out = message(MSG_FRAME, EPOCH_BYTES + frame.length);
  writeI64BE(out, epoch, 5);
  out.set(frame, 5 + EPOCH_BYTES);
  return out;
}

export function encodeTunnelMark(epoch: number): Buffer {
  const out = message(MSG_MARK, EPOCH_BYTES);
  writeI64BE(out, epoch, 5);
  return out;
}

export function encodeHello(role: "client" | "server", nonce: Uint8Array, switchId: string): Buffer {
  const id = Buffer.from(switchId, "utf8");
  if (nonce.length !== NONCE_BYTES) throw new RangeError(`nonce must be ${NONCE_BYTES} bytes`);
  if (id.length < 1 || id.length > 255) throw new RangeError("switch id must be 1..255 UTF-8 bytes");
  const out = message(MSG_HELLO, 2 + NONCE_BYTES + 1 + id.length);
  out[5] = TUNNEL_PROTOCOL_VERSION;
  out[6] = role === "client" ? 0 : 1;
  out.set(nonce, 7);
  out[7 + NONCE_BYTES] = id.length;
  id.copy(out, 8 + NONCE_BYTES);
  return out;
}

export function encodeProof(mac: Uint8Array): Buffer {
  const out = message(MSG_PROOF, MAC_BYTES);
  out.set(mac, 5);
  return out;
}

/** Decodes one message body (what FrameDecoder returns); `offset` is only for error reports. */
export function decodeTunnelMessage(body: Uint8Array, offset = 0): TunnelMessage {
  const buf = asBuffer(body);
  const short = (what: string) =>
    new FrameFormatError("FRAME_TOO_SHORT", `tunnel ${what} message of ${buf.length} bytes`, { offset });
  if (buf.length < 1) throw short("empty");
  switch (buf[0]) {
    case MSG_FRAME:
      if (buf.length < 1 + EPOCH_BYTES) throw short("frame");
      return { type: "frame", epoch: readI64BE(buf, 1), frame: buf.subarray(1 + EPOCH_BYTES) };
    case MSG_MARK:
      if (buf.length !== 1 + EPOCH_BYTES) throw short("mark");
      return { type: "mark", epoch: readI64BE(buf, 1) };
    case MSG_PROOF:
      if (buf.length !== 1 + MAC_BYTES) throw short("proof");
      return { type: "proof", mac: buf.subarray(1) };
    case MSG_HELLO: {
      if (buf.length < 4 + NONCE_BYTES) throw short("hello");
      const idLen = buf[3 + NONCE_BYTES]!;
      if (buf.length !== 4 + NONCE_BYTES + idLen || idLen === 0) throw short("hello");
      return {
        type: "hello",
        version: buf[1]!,
        role: buf[2] === 0 ? "client" : "server",
        nonce: buf.subarray(3, 3 + NONCE_BYTES),
        switchId: buf.toString("utf8", 4 + NONCE_BYTES),
      };
    }
    default:
      throw new FrameFormatError("BAD_MAGIC", `unknown tunnel message type 0x${buf[0]!.toString(16)}`, {
        offset,
      });
  }
}

/** Proof that the `role` side knows the secret, bound to both nonces and both ids. */
export function handshakeProof(
  secret: Uint8Array,
  role: "client" | "server",
  clientNonce: Uint8Array,
  serverNonce: Uint8Array,
  clientId: string,
  serverId: string,
): Buffer {
  const h = createHmac("sha256", secret);
  h.update(`vpc-vnet-tunnel-${TUNNEL_PROTOCOL_VERSION} ${role}\0`);
  h.update(clientNonce);
  h.update(serverNonce);
  h.update(`${clientId}\0${serverId}`);
  return h.digest();
}

export interface HandshakeOptions {
  role: "client" | "server";
  secret: Uint8Array;
  switchId: string;
  /** Fresh random bytes (NONCE_BYTES): injected so the state machine stays pure. */
  nonce: Uint8Array;
}

export interface HandshakeStep {
  /** Messages to send now, in order. */
  send: Buffer[];
  /** The peer's switch id once it has proved knowledge of the secret. */
  peerId?: string;
}

/**
 * Pure state machine of the tunnel handshake:
 *   client → server  HELLO(client nonce, client id)
 *   server → client  HELLO(server nonce, server id), PROOF(server)
 *   client → server  PROOF(client)
 * The client is authenticated when the server has checked its PROOF, and vice versa.
 */
export class TunnelHandshake {
  readonly #o: HandshakeOptions;
  #peerNonce: Uint8Array | undefined;
  #peerId: string | undefined;
  #done = false;

  constructor(options: HandshakeOptions) {
    if (options.secret.length < 16) {
      throw new VnetError("INVALID_ARGUMENT", "the cluster secret must be at least 16 bytes");
    }
    this.#o = options;
  }

  get done(): boolean {
    return this.#done;
  }

  /** The client's opening message (the server opens nothing). */
  start(): Buffer[] {
    return this.#o.role === "client" ? [encodeHello("client", this.#o.nonce, this.#o.switchId)] : [];
  }

  receive(msg: TunnelMessage): HandshakeStep {
    const { role, secret, switchId, nonce } = this.#o;
    if (this.#done) throw new TunnelAuthError(`unexpected ${msg.type} after the handshake`);
    if (msg.type === "hello") {
      if (this.#peerNonce !== undefined) throw new TunnelAuthError("second hello");
      if (msg.version !== TUNNEL_PROTOCOL_VERSION) {
        throw new TunnelAuthError(
          `peer speaks tunnel protocol ${msg.version}, this side ${TUNNEL_PROTOCOL_VERSION}`,
        );
      }
      if (msg.role === role) throw new TunnelAuthError(`both sides are ${role}s`);
      this.#peerNonce = new Uint8Array(msg.nonce);
      this.#peerId = msg.switchId;
      if (role === "client") return { send: [] };
      const proof = handshakeProof(secret, "server", this.#peerNonce, nonce, msg.switchId, switchId);
      return { send: [encodeHello("server", nonce, switchId), encodeProof(proof)] };
    }
    if (msg.type === "proof") {
      if (this.#peerNonce === undefined || this.#peerId === undefined)
        throw new TunnelAuthError("proof before hello");
      const peerRole = role === "client" ? "server" : "client";
      const [cn, sn, cid, sid] =
        role === "client"
          ? [nonce, this.#peerNonce, switchId, this.#peerId]
          : [this.#peerNonce, nonce, this.#peerId, switchId];
      const expected = handshakeProof(secret, peerRole, cn, sn, cid, sid);
      if (msg.mac.length !== expected.length || !timingSafeEqual(msg.mac, expected)) {
        throw new TunnelAuthError(`switch ${JSON.stringify(this.#peerId)} does not know the cluster secret`, {
          tunnelId: this.#peerId,
        });
      }
      this.#done = true;
      const send = role === "client" ? [encodeProof(handshakeProof(secret, "client", cn, sn, cid, sid))] : [];
      return { send, peerId: this.#peerId };
    }
    throw new TunnelAuthError(`${msg.type} message before the handshake finished`);
  }
}
