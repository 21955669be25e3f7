/**
 * Errors of the testbed (making and keeping hosts, the daemon, its control socket, the lock).
 * Callers branch on `code`, never on message text.
 *
 *   TestbedError            base; `code`, `hostId`, `cause`
 *   └─ HostSetupError       a host could not be probed, created or removed; `op` (e.g. ssh-key,
 *                           ssh-connect, netns, qemu-host)
 *
 * Errors about the cluster description itself stay @vpc/cluster's `ClusterConfigError` (with the
 * field), also when it is this machine that cannot run it; the RPC of the control socket fails
 * with @vpc/cluster's `RpcError`.
 */

const BRAND = Symbol.for("vpc.testbed.error");

export type TestbedErrorCode =
  /** A host could not be probed, created or removed (`HostSetupError`). */
  | "TESTBED_HOST"
  /** The testbed, its daemon or its lock is not in the state the call needs. */
  | "TESTBED_STATE"
  /** A control request names something the testbed does not have (e.g. a VM). */
  | "TESTBED_REQUEST";

export interface TestbedErrorOptions {
  hostId?: string | undefined;
  cause?: unknown;
}

export class TestbedError extends Error {
  readonly code: TestbedErrorCode;
  readonly hostId: string | undefined;
  readonly [BRAND] = true;

  constructor(code: TestbedErrorCode, message: string, options: TestbedErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TestbedError";
    this.code = code;
    this.hostId = options.hostId;
  }

  /** True for any error of this package, even from a second installed copy of it. */
  static isInstance(value: unknown): value is TestbedError {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

export class HostSetupError extends TestbedError {
  readonly op: string;
  constructor(op: string, message: string, options: TestbedErrorOptions = {}) {
    super("TESTBED_HOST", `testbed ${op}: ${message}`, options);
    this.name = "HostSetupError";
    this.op = op;
  }
}
