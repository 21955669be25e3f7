/** Results records from the executors: the controller's checkpoint records mapped, and appended in order. */
import type { CheckpointRecord as ControllerRecord } from "@vpc/controller";
import type { ResultRecord } from "./format.js";
import type { CellContext } from "./runner.js";

/**
 * Maps one controller checkpoint record to a results record: the flattened fields the report
 * reads (ARCHITECTURE §2 names), the pause's `steps` as the engine recorded them, and the whole
 * record besides (`metrics`), so fields the controller adds later are kept without a change here.
 */
export function toResultRecord(r: ControllerRecord): ResultRecord {
  if (!r.ok) {
    return {
      type: "checkpoint-failure",
      vmId: r.vmId,
      epoch: r.epoch,
      engine: r.engine,
      stage: r.stage,
      error: { name: r.error.name, code: r.error.code ?? null, message: r.error.message },
    };
  }
  const p = r.prediction;
  const { steps, ...metrics } = r;
  return {
    type: "checkpoint",
    vmId: r.vmId,
    epoch: r.epoch,
    engine: r.engine,
    full: r.full,
    pauseMs: r.pauseMs,
    stallMs: r.stallMs,
    soloDowntimeMs: r.soloDowntimeMs,
    memoryOverhead: r.memoryOverhead,
    checkpointBytes: r.checkpointBytes,
    durableMs: r.durableMs,
    pagesDirty: r.pagesDirty,
    pagesCopiedInPause: r.pagesCopiedInPause,
    pagesProtected: r.pagesProtected,
    pagesCowCopied: r.pagesCowCopied,
    cowFaults: r.cowFaults,
    precision: p?.precision ?? null,
    recall: p?.recall ?? null,
    predicted: p?.predicted ?? null,
    hits: p?.hits ?? null,
    written: p?.written ?? null,
    predictionApproximate: p?.approximate ?? null,
    steps: { ...steps },
    metrics: JSON.parse(JSON.stringify(metrics)) as Record<string, unknown>,
  };
}

/**
 * Appends records in the order pushed while the caller goes on (a checkpoint loop's callback
 * cannot wait); `flush` waits for them all and rethrows the first append error.
 */
export function recordQueue(ctx: CellContext): { push(r: ResultRecord): void; flush(): Promise<void> } {
  let chain = Promise.resolve();
  return {
    push: (r) => {
      chain = chain.then(() => ctx.record(r));
    },
    flush: () => chain,
  };
}
