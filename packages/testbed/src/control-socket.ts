/**
 * The control protocol of a testbed daemon (`vpc testbed up` leaves one per testbed): requests on
 * the unix socket `<runDir>/control.sock` (mode 0600, so only root talks to it), framed like the
 * host-agent RPC (rpc-codec.ts) and served by `RpcPeer`. `validateControlRequest` is pure: the CLI
 * uses it to reject bad arguments before it connects, the daemon before it acts.
 *
 *   method       params                                         result
 *   status       —                                              DaemonStatus
 *   run          { kernel?, class?, np?, checkpointEveryMs?,    RunResult  (events: "progress")
 *                  timeoutMs? }
 *   checkpoint   —                                              EpochMetrics
 *   kill         —                                              { vms }
 *   restore      { epoch? }                                     RestoreReport
 *   exec         { vm, command, timeoutMs? }                    ExecResult
 *   shutdown     —                                              { ok: true } (then the daemon exits)
 */
import { createConnection, type Socket } from "node:net";
import { join } from "node:path";
import type { ClusterRestoreResult, EpochMetrics } from "@vpc/cluster";
import { RpcError, RpcPeer } from "@vpc/cluster";
import { isNpbClass, isNpbKernel, type NpbClass, type NpbKernel, type NpbResult } from "@vpc/npb";
import { TestbedError } from "./errors.js";

const CONTROL_SOCKET_FILE = "control.sock";
export const DAEMON_PID_FILE = "daemon.pid";
export const DAEMON_LOG_FILE = "daemon.log";

export const controlSocketPath = (runDir: string): string => join(runDir, CONTROL_SOCKET_FILE);

export type ControlRequest =
  | { readonly method: "status" }
  | {
      readonly method: "run";
      readonly kernel?: NpbKernel;
      readonly class?: NpbClass;
      readonly np?: number;
      /** Global checkpoints start to start during the run; absent: none. */
      readonly checkpointEveryMs?: number;
      /** Run limit (default 600 000 ms; time the cluster spends killed counts too). */
      readonly timeoutMs?: number;
    }
  | { readonly method: "checkpoint" }
  | { readonly method: "kill" }
  | { readonly method: "restore"; readonly epoch?: number }
  | { readonly method: "exec"; readonly vm: string; readonly command: string; readonly timeoutMs?: number }
  | { readonly method: "shutdown" };

export type ControlMethod = ControlRequest["method"];

/** What the daemon is doing. */
export type DaemonPhase = "starting" | "ready" | "stopping";

/** `running`: booted and answering; `killed`: SIGKILLed by `kill`, waiting for `restore`. */
export type DaemonVmState = "booting" | "running" | "killed" | "restoring" | "not answering";

export interface DaemonVmStatus {
  readonly name: string;
  readonly host: string;
  readonly dataIp: string;
  readonly state: DaemonVmState;
  /** Why a VM in state `running` did not answer a probe (state is then `not answering`). */
  readonly problem?: string;
}

export interface DaemonStatus {
  readonly pid: number;
  readonly phase: DaemonPhase;
  readonly startedAt: string;
  readonly vms: readonly DaemonVmStatus[];
  /** Committed epochs of the cluster manifest, oldest first. */
  readonly committedEpochs: readonly number[];
  /** The epoch the VMs were last restored from (absent: booted fresh). */
  readonly restoredFrom?: number;
  /** The run in progress, if any. */
  readonly run?: {
    readonly workload: string;
    readonly startedAt: string;
    readonly checkpointEveryMs?: number;
  };
  /** The last progress lines (newest last). */
  readonly progress: readonly string[];
}

export interface RunResult {
  /** e.g. "CG.S -n 4". */
  readonly workload: string;
  readonly verified: boolean;
  readonly verificationLines: readonly string[];
  readonly results: readonly NpbResult[];
  /** Every result block printed, but mpiexec did not exit in the grace time (MPICH 4.0.2; docs/cluster.md). */
  readonly finalizeHang: boolean;
  readonly wallMs: number;
  /** Checkpoints taken by the run's own periodic loop. */
  readonly epochs: readonly EpochMetrics[];
  readonly abortedEpochs: number;
  /**
   * Restores while the run was in progress: the epoch, and whether the kernel was still computing
   * in it (no result yet in the restored output: the restore resumed a running computation).
   */
  readonly restoredFrom: readonly { readonly epoch: number; readonly computing: boolean }[];
  /** The workload's whole output (kept in the first VM's RAM). */
  readonly output: string;
}

export interface RestoreReport extends ClusterRestoreResult {
  /** The VMs were running: `restore` SIGKILLed them first (a rollback). */
  readonly killedFirst: boolean;
}

const bad = (message: string): never => {
  throw new RpcError("RPC_PROTOCOL", `bad request: ${message}`);
};

function optInt(p: Record<string, unknown>, key: string, min: number, max: number): number | undefined {
  const v = p[key];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
    return bad(`${key} must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
  return v;
}

function only(p: Record<string, unknown>, keys: readonly string[]): void {
  for (const k of Object.keys(p)) if (!keys.includes(k)) bad(`unknown parameter ${k}`);
}

/** Checks a request; throws `RpcError` RPC_PROTOCOL naming what is wrong. */
export function validateControlRequest(method: string, params: unknown): ControlRequest {
  if (params !== null && params !== undefined && (typeof params !== "object" || Array.isArray(params)))
    bad("params must be an object");
  const p = (params ?? {}) as Record<string, unknown>;
  switch (method) {
    case "status":
    case "checkpoint":
    case "kill":
    case "shutdown":
      only(p, []);
      return { method };
    case "run": {
      only(p, ["kernel", "class", "np", "checkpointEveryMs", "timeoutMs"]);
      const { kernel, class: cls } = p;
      if (kernel !== undefined && (typeof kernel !== "string" || !isNpbKernel(kernel)))
        bad(`unknown NPB kernel ${JSON.stringify(kernel)}`);
      if (cls !== undefined && (typeof cls !== "string" || !isNpbClass(cls)))
        bad(`unknown NPB class ${JSON.stringify(cls)}`);
      const np = optInt(p, "np", 1, 1024);
      const every = optInt(p, "checkpointEveryMs", 100, 3_600_000);
      const timeoutMs = optInt(p, "timeoutMs", 1000, 86_400_000);
      return {
        method,
        ...(kernel === undefined ? {} : { kernel: kernel as NpbKernel }),
        ...(cls === undefined ? {} : { class: cls as NpbClass }),
        ...(np === undefined ? {} : { np }),
        ...(every === undefined ? {} : { checkpointEveryMs: every }),
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
      };
    }
    case "restore": {
      only(p, ["epoch"]);
      const epoch = optInt(p, "epoch", 0, Number.MAX_SAFE_INTEGER);
      return epoch === undefined ? { method } : { method, epoch };
    }
    case "exec": {
      only(p, ["vm", "command", "timeoutMs"]);
      if (typeof p.vm !== "string" || p.vm === "") bad("vm must be a VM name");
      if (typeof p.command !== "string" || p.command.trim() === "") bad("command must be a non-empty string");
      const timeoutMs = optInt(p, "timeoutMs", 1, 86_400_000);
      return {
        method,
        vm: p.vm as string,
        command: p.command as string,
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
      };
    }
    default:
      return bad(`unknown method ${JSON.stringify(method)}`);
  }
}

/** A connection to a testbed daemon's control socket. */
export class TestbedControlClient {
  readonly #sock: Socket;
  readonly #rpc: RpcPeer;

  private constructor(sock: Socket, rpc: RpcPeer) {
    this.#sock = sock;
    this.#rpc = rpc;
  }

  /**
   * Connects to `<runDir>/control.sock`. Rejects with `TestbedError` TESTBED_STATE when nothing
   * listens there (no daemon, or a dead one whose socket file is left).
   */
  static connect(
    runDir: string,
    options: { onProgress?: (line: string) => void; timeoutMs?: number } = {},
  ): Promise<TestbedControlClient> {
    const path = controlSocketPath(runDir);
    return new Promise((resolve, reject) => {
      const sock = createConnection(path);
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new TestbedError("TESTBED_STATE", `the testbed daemon at ${path} does not answer`));
      }, options.timeoutMs ?? 5000);
      sock.once("error", (cause) => {
        clearTimeout(timer);
        reject(new TestbedError("TESTBED_STATE", `no testbed daemon listens on ${path}`, { cause }));
      });
      sock.once("connect", () => {
        clearTimeout(timer);
        sock.removeAllListeners("error");
        const rpc = new RpcPeer(sock, sock, {
          idPrefix: "cli#",
          peerId: "testbed daemon",
          onEvent: (name, data) => {
            if (name === "progress" && typeof (data as { line?: unknown })?.line === "string")
              options.onProgress?.((data as { line: string }).line);
          },
        });
        resolve(new TestbedControlClient(sock, rpc));
      });
    });
  }

  /** Sends a validated request; no timeout unless given (a `run` takes as long as the kernel). */
  call<T>(request: ControlRequest, timeoutMs?: number): Promise<T> {
    const { method, ...params } = request;
    return this.#rpc.call<T>(method, params, timeoutMs === undefined ? {} : { timeoutMs });
  }

  close(): void {
    this.#rpc.close();
    this.#sock.destroy();
  }
}
