/** Public types of the per-VM checkpoint engines (ARCHITECTURE.md §4; metric names from §2). */
import type { DirtyLogClient } from "@vpc/dirty-log";
import type { CheckpointStore } from "@vpc/storage";
import type { Logger } from "../logger.js";
import type { Vm } from "../vm.js";

export const ENGINE_NAMES = ["stop-copy", "cow", "vpc", "precopy", "qemu-snapshot", "qemu-stop"] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];

/** Everything an engine works on. The agent must be attached (not yet armed is fine) for the agent engines. */
export interface EngineContext {
  readonly vm: Vm;
  readonly store: CheckpointStore;
  /** The dirty-log agent of `vm`, attached to `vm.ramPath`; required by stop-copy, cow, vpc and precopy. */
  readonly agent?: DirtyLogClient;
  /** Commit the global epoch for this VM alone after its part is durable (default true; a coordinator says false). */
  readonly commitGlobal?: boolean;
  /**
   * The VM's channel state for `epoch` (frames in transit across the cut, e.g. from @vpc/vnet's
   * `channelLog`), awaited after resume and stored in the epoch's part before it is committed, so
   * a committed epoch never lacks its log. Omitted: the part has no channel log.
   */
  readonly channelLog?: (epoch: number) => Promise<Uint8Array>;
  readonly logger?: Logger;
  /**
   * Test-only: called inside the pause, after device state is saved and before `cont`, with the
   * epoch being taken. Whatever it does lengthens the measured pause.
   */
  readonly onPaused?: (epoch: number) => Promise<void>;
}

/** Prediction quality of one checkpoint, W = pages actually COW-faulted (plus predicted pages written while saving). */
export interface PredictionMetrics {
  /** Epoch whose prediction this is (known only when the next interval has been harvested). */
  readonly epoch: number;
  /** |P ∩ D|: pages copied in the pause because they were predicted. */
  readonly predicted: number;
  /** |P ∩ W| */
  readonly hits: number;
  /** |W| */
  readonly written: number;
  readonly precision: number | null;
  readonly recall: number | null;
  /** true when hits is only an upper bound (first-write times unknown); the agent engines measure W exactly. */
  readonly approximate: boolean;
}

/** Metrics of one committed checkpoint (JSON-serialisable; times in ms from process.hrtime.bigint()). */
export interface CheckpointMetrics {
  readonly ok: true;
  readonly vmId: string;
  readonly epoch: number;
  readonly engine: string;
  readonly full: boolean;
  /** Tracking mode of the agent, or null for QEMU's own engines. */
  readonly mode: "sync" | "async" | null;
  /** QMP `stop` sent → QMP `cont` acknowledged (qemu-snapshot: QEMU's own reported downtime). */
  readonly pauseMs: number;
  /** vCPU stall in tracking faults between `stop` and durable. */
  readonly trackingStallMs: number | null;
  /** vCPU stall in COW faults (and waits for staging space) of this checkpoint. */
  readonly cowStallMs: number | null;
  /** trackingStallMs + cowStallMs */
  readonly stallMs: number | null;
  /** solo VM downtime = pauseMs + stallMs */
  readonly soloDowntimeMs: number;
  /** Tracking-fault stall of the whole interval that ended at this checkpoint (sync mode's run-time cost). */
  readonly intervalTrackingStallMs: number | null;
  readonly trackingFaults: number | null;
  readonly cowFaults: number | null;
  /** COW faults raised by a read (async mode): the vCPU stalled, but no write was mispredicted. */
  readonly cowFaultsOnRead?: number | null;
  /** |D(e)| (the full epoch: every page). */
  readonly pagesDirty: number;
  /** Pages this checkpoint had to save (D plus pages of failed earlier checkpoints). */
  readonly pagesToSave: number;
  /** vpc: |P ∩ save set| (before any fallback), |R| (pages of the pre-pause window), and whether P
   * covered enough of the save set that everything was copied. */
  readonly pagesPredicted?: number | null;
  readonly pagesInWindow?: number | null;
  readonly fellBack?: boolean | null;
  /** vpc: the plan of this pause (adapt=1 picks it by cost; see docs/engines.md). */
  readonly vpcPlan?: "predict" | "cow" | "copy-all" | null;
  /**
   * vpc with adapt=1: the modelled downtime (ms) of each plan on the checkpoint before, by which
   * this pause's plan was chosen; null before the first judgement or with adapt=0.
   */
  readonly vpcPlanCostsMs?: { predict: number; cow: number; "copy-all": number } | null;
  readonly pagesCopiedInPause: number;
  readonly pagesProtected: number;
  readonly pagesCowCopied: number;
  readonly pagesSavedAfterResume: number;
  /** Agent time per page copied into staging, and per page protected, inside the pause (ns). */
  readonly copyNsPerPage?: number | null;
  readonly protectNsPerPage?: number | null;
  /** cow/vpc: the agent's saver, start to end (ms, including its shortest early-write window). */
  readonly saveMs?: number | null;
  /** precopy: live rounds run and pages copied in them. */
  readonly liveRounds: number;
  readonly pagesCopiedLive: number;
  /** Peak bytes held in checkpoint buffers (agent staging, QEMU stream) for this checkpoint. */
  readonly peakStagingBytes: number;
  /** peakStagingBytes ÷ guest RAM bytes */
  readonly memoryOverhead: number;
  /** QMP `stop` sent (or migrate sent) → epoch committed and durable. */
  readonly durableMs: number;
  /** Bytes of the stored part (all its files). */
  readonly checkpointBytes: number;
  readonly deviceStateBytes: number;
  /**
   * Step times inside the pause (ms), by name. Agent engines: stopMs (QMP stop), agentMs (the one
   * agent call, from stop acknowledged) made of harvestMs + planMs + copyMs + protectMs (the agent's
   * own clock), deviceStateMs (migration into memory, from stop acknowledged, side by side with the
   * agent call), contMs (QMP cont). QEMU's engines report their own steps.
   */
  readonly steps: Readonly<Record<string, number>>;
  /** Prediction of the previous checkpoint, now that its next interval was harvested (cow/vpc). */
  readonly prediction: PredictionMetrics | null;
  readonly startedAt: string;
}

/** A checkpoint that failed: reported, never committed. */
export interface CheckpointFailure {
  readonly ok: false;
  readonly vmId: string;
  readonly epoch: number;
  readonly engine: string;
  readonly stage: string;
  readonly error: { readonly name: string; readonly code: string | undefined; readonly message: string };
  readonly startedAt: string;
}

export type CheckpointRecord = CheckpointMetrics | CheckpointFailure;

export interface CheckpointEngine {
  readonly name: EngineName;
  /** The spec the engine was built from, e.g. `vpc(k-of-n:k=2,n=4)`. */
  readonly spec: string;
  /** Takes epoch `epoch` (newer than every committed epoch); rejects with `EngineCheckpointError` on failure. */
  checkpoint(epoch: number): Promise<CheckpointMetrics>;
}
