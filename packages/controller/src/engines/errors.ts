import { CheckpointError } from "../errors.js";

/** A checkpoint of one epoch failed at `stage`; nothing was committed unless `committed`. */
export class EngineCheckpointError extends CheckpointError {
  readonly epoch: number;
  readonly engine: string;
  readonly stage: string;
  /** true only when the epoch was committed and a later step (resetting the agent) failed. */
  readonly committed: boolean;
  constructor(
    engine: string,
    epoch: number,
    stage: string,
    cause: unknown,
    options: { vmId?: string; committed?: boolean } = {},
  ) {
    super(stage, `${engine} epoch ${epoch}: ${cause instanceof Error ? cause.message : String(cause)}`, {
      ...(options.vmId === undefined ? {} : { vmId: options.vmId }),
      cause,
    });
    this.name = "EngineCheckpointError";
    this.epoch = epoch;
    this.engine = engine;
    this.stage = stage;
    this.committed = options.committed ?? false;
  }
}
