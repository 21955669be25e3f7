/**
 * Errors of the virtual-cluster layer (controller ↔ host agents, global checkpoints, restore).
 * Callers branch on `code`, never on message text.
 *
 *   ClusterError              base; `code`, `hostId`, `epoch`, `cause`
 *   ├─ ClusterConfigError     bad cluster description; `field`
 *   ├─ RpcError               framed RPC failures; `code` RPC_PROTOCOL | RPC_INTERRUPTED | RPC_TIMEOUT | RPC_REMOTE
 *   │                          (`method`, `remote`: the agent's error name/code/message for RPC_REMOTE)
 *   ├─ HostKeyError           a host presented another SSH key than the configured or pinned one
 *   └─ EpochAbortedError      a global checkpoint did not commit; `failedHosts`
 */

const BRAND = Symbol.for("vpc.cluster.error");

export type ClusterErrorCode =
  | "CLUSTER_CONFIG"
  | "RPC_PROTOCOL"
  | "RPC_INTERRUPTED"
  | "RPC_TIMEOUT"
  | "RPC_REMOTE"
  | "HOST_KEY"
  | "EPOCH_ABORTED"
  | "CLUSTER_STATE"
  | "RESTORE_FAILED";

export interface ClusterErrorOptions {
  hostId?: string | undefined;
  epoch?: number | undefined;
  cause?: unknown;
}

export class ClusterError extends Error {
  readonly code: ClusterErrorCode;
  readonly hostId: string | undefined;
  readonly epoch: number | undefined;
  readonly [BRAND] = true;

  constructor(code: ClusterErrorCode, message: string, options: ClusterErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ClusterError";
    this.code = code;
    this.hostId = options.hostId;
    this.epoch = options.epoch;
  }

  /** True for any error of this layer, even from a second installed copy of the package. */
  static isInstance(value: unknown): value is ClusterError {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

export class ClusterConfigError extends ClusterError {
  readonly field: string;
  constructor(field: string, message: string) {
    super("CLUSTER_CONFIG", `invalid cluster config: ${field}: ${message}`);
    this.name = "ClusterConfigError";
    this.field = field;
  }
}

/** What the other side of the RPC reported for a failed call (serialisable). */
export interface RemoteErrorInfo {
  readonly name: string;
  readonly code: string | undefined;
  readonly message: string;
}

export class RpcError extends ClusterError {
  readonly method: string | undefined;
  readonly remote: RemoteErrorInfo | undefined;
  constructor(
    code: "RPC_PROTOCOL" | "RPC_INTERRUPTED" | "RPC_TIMEOUT" | "RPC_REMOTE",
    message: string,
    options: ClusterErrorOptions & { method?: string; remote?: RemoteErrorInfo } = {},
  ) {
    super(code, message, options);
    this.name = "RpcError";
    this.method = options.method;
    this.remote = options.remote;
  }
}

export class EpochAbortedError extends ClusterError {
  readonly failedHosts: readonly { hostId: string; reason: string }[];
  constructor(epoch: number, failedHosts: readonly { hostId: string; reason: string }[]) {
    super(
      "EPOCH_ABORTED",
      `epoch ${epoch} aborted: ${failedHosts.map((f) => `${f.hostId}: ${f.reason}`).join("; ")}`,
      { epoch },
    );
    this.name = "EpochAbortedError";
    this.failedHosts = failedHosts;
  }
}

/** A plain, serialisable description of any thrown value. */
export function describeError(e: unknown): RemoteErrorInfo {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return { name: e.name, code: typeof code === "string" ? code : undefined, message: e.message };
  }
  return { name: "Error", code: undefined, message: String(e) };
}
