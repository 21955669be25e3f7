/**
 * Error tree of @vpc/vnet:
 *
 *   VnetError (name "VnetError", code = one of VnetErrorCode)
 *   ├─ FrameFormatError (name "FrameFormatError"): a byte stream (QEMU framing, tunnel messages,
 *   │  channel log) is malformed; carries the byte `offset` where decoding failed.
 *   └─ TunnelAuthError (name "TunnelAuthError"): a tunnel peer failed the shared-secret handshake.
 *
 * Callers branch on `code` and the data fields (`portId`, `tunnelId`, `epoch`, `path`, `op`), never
 * on the message text. `isInstance` checks a `Symbol.for` brand, so it works across duplicate
 * installs of the package.
 */

const VNET_ERROR_BRAND = Symbol.for("@vpc/vnet.VnetError");
const FRAME_FORMAT_ERROR_BRAND = Symbol.for("@vpc/vnet.FrameFormatError");
const TUNNEL_AUTH_ERROR_BRAND = Symbol.for("@vpc/vnet.TunnelAuthError");

export type VnetErrorCode =
  /** A length prefix announces a frame larger than the configured maximum. */
  | "FRAME_TOO_LARGE"
  /** A frame is shorter than an Ethernet header (14 bytes), or a message is too short for its type. */
  | "FRAME_TOO_SHORT"
  /** A magic number or message type is unknown. */
  | "BAD_MAGIC"
  /** A format version this reader does not know. */
  | "UNSUPPORTED_VERSION"
  /** The data ends in the middle of a record. */
  | "TRUNCATED"
  /** A checksum does not match. */
  | "CHECKSUM_MISMATCH"
  /** Checksums match but a field is out of range. */
  | "CORRUPT"
  /** No port or tunnel with that id. */
  | "UNKNOWN_PORT"
  /** A port or tunnel with that id already exists. */
  | "DUPLICATE_PORT"
  /** The operation is not allowed in the port's or switch's current state (see `state`). */
  | "BAD_STATE"
  /** An epoch argument is not an integer in range, or goes backwards. */
  | "BAD_EPOCH"
  /** An argument is not acceptable. */
  | "INVALID_ARGUMENT"
  /** The tunnel peer did not prove knowledge of the cluster secret. */
  | "AUTH_FAILED"
  /** A wait (channel log completion, tunnel connect) took longer than allowed. */
  | "TIMEOUT"
  /** A socket or file operation failed (see `op`, `path`, `cause`). */
  | "IO_ERROR"
  /** The switch was closed while the operation was pending. */
  | "CLOSED";

export interface VnetErrorOptions {
  cause?: unknown;
  portId?: string;
  tunnelId?: string;
  epoch?: number;
  state?: string;
  path?: string;
  op?: string;
}

export class VnetError extends Error {
  override readonly name: string = "VnetError";
  readonly code: VnetErrorCode;
  readonly portId: string | undefined;
  readonly tunnelId: string | undefined;
  readonly epoch: number | undefined;
  readonly state: string | undefined;
  readonly path: string | undefined;
  readonly op: string | undefined;
  readonly [VNET_ERROR_BRAND] = true;

  constructor(code: VnetErrorCode, message: string, options: VnetErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.portId = options.portId;
    this.tunnelId = options.tunnelId;
    this.epoch = options.epoch;
    this.state = options.state;
    this.path = options.path;
    this.op = options.op;
  }

  static isInstance(e: unknown): e is VnetError {
    return typeof e === "object" && e !== null && VNET_ERROR_BRAND in e;
  }
}

export interface FrameFormatErrorOptions extends VnetErrorOptions {
  /** Byte offset in the stream (or blob) of the length prefix or record where decoding failed. */
  offset: number;
  /** For FRAME_TOO_LARGE: the announced length and the configured limit. */
  length?: number;
  limit?: number;
}

export class FrameFormatError extends VnetError {
  override readonly name: string = "FrameFormatError";
  readonly offset: number;
  readonly length: number | undefined;
  readonly limit: number | undefined;
  readonly [FRAME_FORMAT_ERROR_BRAND] = true;

  constructor(code: VnetErrorCode, message: string, options: FrameFormatErrorOptions) {
    super(code, `at offset ${options.offset}: ${message}`, options);
    this.offset = options.offset;
    this.length = options.length;
    this.limit = options.limit;
  }

  static override isInstance(e: unknown): e is FrameFormatError {
    return typeof e === "object" && e !== null && FRAME_FORMAT_ERROR_BRAND in e;
  }
}

export class TunnelAuthError extends VnetError {
  override readonly name: string = "TunnelAuthError";
  readonly [TUNNEL_AUTH_ERROR_BRAND] = true;

  constructor(message: string, options: VnetErrorOptions = {}) {
    super("AUTH_FAILED", message, options);
  }

  static override isInstance(e: unknown): e is TunnelAuthError {
    return typeof e === "object" && e !== null && TUNNEL_AUTH_ERROR_BRAND in e;
  }
}
