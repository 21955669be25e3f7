/**
 * Two-phase global checkpoints (ARCHITECTURE.md §1.4, §3).
 *
 * Phase 1 (prepare): every host agent pauses its VMs, flips their vnet ports to epoch e, runs the
 * engine, resumes, and makes its part durable (VM parts with their channel logs + its local store
 * commit). A host whose switch dropped a frame while the cut formed reports it, and the epoch is
 * aborted: a restore of it could miss that frame.
 * Phase 2 (commit): once every host has reported, the controller writes epoch e to the cluster
 * manifest: that write is the commit point. A host failing or not reporting within the timeout
 * aborts e; the last committed epoch stays the one restores use.
 *
 * `EpochRound` is the pure state machine; `runGlobalEpoch` drives it over async host handles.
 */
import { EpochAbortedError } from "./errors.js";

/** One VM's part of a global checkpoint, as its host agent reports it. */
export interface VmEpochReport {
  readonly vmId: string;
  /** Wall-clock ms (performance.timeOrigin + now) when QMP stop was sent / cont acknowledged. */
  readonly pausedAt: number;
  readonly resumedAt: number;
  readonly pauseMs: number;
  readonly soloDowntimeMs: number;
  readonly full: boolean;
  readonly checkpointBytes: number;
  /** QMP stop → part durable. */
  readonly durableMs: number;
  /** Frames held for this VM's port / logged as its channel state during this epoch's round. */
  readonly heldFrames: number;
  readonly loggedFrames: number;
  /** Frames in the channel log stored for this epoch. */
  readonly channelLogFrames: number;
  /**
   * This VM's pause by step (ms): its engine's CheckpointMetrics.steps plus the host agent's cut
   * around QMP stop (`cutBeforeStopMs`, `qmpStopMs`, `cutAfterStopMs`).
   */
  readonly steps: Readonly<Record<string, number>>;
}

export interface HostEpochReport {
  readonly hostId: string;
  readonly epoch: number;
  readonly vms: readonly VmEpochReport[];
  /** prepare call received → part durable, on the host. */
  readonly hostMs: number;
  /** Frames the host's switch dropped since its previous report (any cause; @vpc/vnet `drops()`). */
  readonly droppedFrames: number;
  /** Frames dropped while this epoch's cut formed, by cause; any makes the epoch abort. */
  readonly cutDrops: Readonly<Record<string, number>>;
}

export type RoundState = "collecting" | "ready" | "committed" | "aborted";

export type RoundDecision =
  | { readonly type: "commit"; readonly epoch: number; readonly reports: readonly HostEpochReport[] }
  | {
      readonly type: "abort";
      readonly epoch: number;
      readonly failed: readonly { hostId: string; reason: string }[];
    };

/** The state of one epoch's round. Pure: callers feed outcomes, it returns the decision once. */
export class EpochRound {
  readonly epoch: number;
  readonly #hosts: readonly string[];
  readonly #reports = new Map<string, HostEpochReport>();
  #state: RoundState = "collecting";

  constructor(epoch: number, hostIds: readonly string[]) {
    if (hostIds.length === 0) throw new RangeError("a round needs at least one host");
    if (new Set(hostIds).size !== hostIds.length) throw new RangeError("duplicate host ids");
    this.epoch = epoch;
    this.#hosts = [...hostIds];
  }

  get state(): RoundState {
    return this.#state;
  }

  /** Hosts that have not reported yet. */
  get waitingFor(): string[] {
    return this.#hosts.filter((h) => !this.#reports.has(h));
  }

  /** A host's part is durable. Returns the commit decision when it was the last one. */
  prepared(report: HostEpochReport): RoundDecision | undefined {
    if (this.#state !== "collecting") return undefined;
    if (!this.#hosts.includes(report.hostId) || report.epoch !== this.epoch)
      return this.#abort([{ hostId: report.hostId, reason: `unexpected report for epoch ${report.epoch}` }]);
    if (this.#reports.has(report.hostId)) return undefined;
    const dropped = Object.entries(report.cutDrops).filter(([, n]) => n > 0);
    if (dropped.length > 0)
      return this.#abort([
        {
          hostId: report.hostId,
          reason: `frames dropped across the cut (${dropped.map(([k, n]) => `${k} ${n}`).join(", ")})`,
        },
      ]);
    this.#reports.set(report.hostId, report);
    if (this.#reports.size < this.#hosts.length) return undefined;
    this.#state = "ready";
    return { type: "commit", epoch: this.epoch, reports: this.#hosts.map((h) => this.#reports.get(h)!) };
  }

  /** A host failed its part: the round aborts (first failure decides; later ones are ignored). */
  failed(hostId: string, reason: string): RoundDecision | undefined {
    if (this.#state !== "collecting") return undefined;
    return this.#abort([{ hostId, reason }]);
  }

  /** The deadline passed: aborts, naming every host that has not reported. */
  timedOut(): RoundDecision | undefined {
    if (this.#state !== "collecting") return undefined;
    return this.#abort(this.waitingFor.map((hostId) => ({ hostId, reason: "timed out" })));
  }

  /** The commit point was written (after a commit decision). */
  committed(): void {
    if (this.#state !== "ready") throw new Error(`round ${this.epoch}: committed() in state ${this.#state}`);
    this.#state = "committed";
  }

  /** Writing the commit point failed: the epoch is aborted after all. */
  commitFailed(reason: string): RoundDecision {
    if (this.#state !== "ready")
      throw new Error(`round ${this.epoch}: commitFailed() in state ${this.#state}`);
    return this.#abort([{ hostId: "controller", reason }]);
  }

  #abort(failed: { hostId: string; reason: string }[]): RoundDecision {
    this.#state = "aborted";
    return { type: "abort", epoch: this.epoch, failed };
  }
}

/** A host as the coordinator sees it. */
export interface EpochParticipant {
  readonly id: string;
  /** Phase 1: checkpoint every VM of the host as epoch `epoch`, durable on return. */
  prepare(epoch: number): Promise<HostEpochReport>;
  /** Told after the decision; failures here are logged by the caller, never change the decision. */
  decided?(decision: RoundDecision): Promise<void>;
}

/**
 * Runs one global checkpoint. Resolves with the commit decision after `commit` (the commit point)
 * succeeded; rejects with `EpochAbortedError` otherwise. Hosts still working when the round
 * aborts are not waited for.
 */
export async function runGlobalEpoch(
  hosts: readonly EpochParticipant[],
  epoch: number,
  options: { timeoutMs: number; commit: (d: RoundDecision & { type: "commit" }) => Promise<void> },
): Promise<RoundDecision & { type: "commit" }> {
  const round = new EpochRound(
    epoch,
    hosts.map((h) => h.id),
  );
  const decision = await new Promise<RoundDecision>((resolve) => {
    const timer = setTimeout(() => {
      const d = round.timedOut();
      if (d) resolve(d);
    }, options.timeoutMs);
    const settle = (d: RoundDecision | undefined): void => {
      if (!d) return;
      clearTimeout(timer);
      resolve(d);
    };
    for (const h of hosts) {
      h.prepare(epoch).then(
        (r) => settle(round.prepared(r)),
        (e: unknown) => settle(round.failed(h.id, e instanceof Error ? e.message : String(e))),
      );
    }
  });
  let final: RoundDecision = decision;
  if (decision.type === "commit") {
    try {
      await options.commit(decision);
      round.committed();
    } catch (e) {
      final = round.commitFailed(e instanceof Error ? e.message : String(e));
    }
  }
  await Promise.all(hosts.map((h) => h.decided?.(final).catch(() => undefined)));
  if (final.type === "abort") throw new EpochAbortedError(epoch, final.failed);
  return final;
}

/** Per-epoch cluster metrics from the host reports (one JSON line in metrics.jsonl). */
export interface EpochMetrics {
  readonly epoch: number;
  /** First VM paused → last VM resumed, over all hosts (ms). */
  readonly vcDowntimeMs: number;
  readonly soloDowntimeMs: Readonly<Record<string, number>>;
  readonly pauseMs: Readonly<Record<string, number>>;
  /** When each VM's pause began, after the first VM's (ms): how far apart the hosts paused. */
  readonly pauseOffsetMs: Readonly<Record<string, number>>;
  /** Each VM's pause by step (ms): its engine's steps plus the cut's (VmEpochReport.steps). */
  readonly steps: Readonly<Record<string, Readonly<Record<string, number>>>>;
  readonly heldFrames: number;
  readonly loggedFrames: number;
  readonly channelLogFrames: number;
  /** Frames the switches dropped since the previous epoch (0 is the only good value). */
  readonly droppedFrames: number;
  readonly checkpointBytes: number;
  /** prepare sent → commit point durable (ms). */
  readonly commitMs: number;
  readonly full: boolean;
}

/** Pure: VC downtime uses the wall-clock stamps of every host (hosts on one machine share a clock). */
export function epochMetrics(reports: readonly HostEpochReport[], commitMs: number): EpochMetrics {
  const vms = reports.flatMap((r) => r.vms);
  if (vms.length === 0) throw new RangeError("no VM reports");
  const first = Math.min(...vms.map((v) => v.pausedAt));
  const last = Math.max(...vms.map((v) => v.resumedAt));
  const sum = (f: (v: VmEpochReport) => number): number => vms.reduce((a, v) => a + f(v), 0);
  return {
    epoch: reports[0]!.epoch,
    vcDowntimeMs: last - first,
    soloDowntimeMs: Object.fromEntries(vms.map((v) => [v.vmId, v.soloDowntimeMs])),
    pauseMs: Object.fromEntries(vms.map((v) => [v.vmId, v.pauseMs])),
    pauseOffsetMs: Object.fromEntries(vms.map((v) => [v.vmId, v.pausedAt - first])),
    steps: Object.fromEntries(vms.map((v) => [v.vmId, v.steps])),
    heldFrames: sum((v) => v.heldFrames),
    loggedFrames: sum((v) => v.loggedFrames),
    channelLogFrames: sum((v) => v.channelLogFrames),
    droppedFrames: reports.reduce((a, r) => a + r.droppedFrames, 0),
    checkpointBytes: sum((v) => v.checkpointBytes),
    commitMs,
    full: vms.some((v) => v.full),
  };
}
