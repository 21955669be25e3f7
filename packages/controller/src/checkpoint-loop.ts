/**
 * Runs an engine every `intervalMs` until stopped. A failed checkpoint is reported (and never
 * committed by the engine); the loop goes on with the next epoch while the VM is alive.
 */
import { appendFile } from "node:fs/promises";
import { EngineCheckpointError } from "./engines/errors.js";
import { type CheckpointSummary, summarizeCheckpoints } from "./engines/summary.js";
import type { CheckpointEngine, CheckpointFailure, CheckpointRecord } from "./engines/types.js";
import type { Vm } from "./vm.js";

export interface CheckpointLoopOptions {
  readonly vm: Vm;
  readonly engine: CheckpointEngine;
  /** Time from the start of one checkpoint to the start of the next (default 1000). */
  readonly intervalMs?: number;
  /** First epoch to take (default 0). */
  readonly firstEpoch?: number;
  /** Stop after this many checkpoints (ok or failed). */
  readonly maxCheckpoints?: number;
  /** Append every record as one JSON line to this file. */
  readonly metricsFile?: string;
  readonly onRecord?: (record: CheckpointRecord) => void;
}

export interface CheckpointLoopResult {
  readonly records: readonly CheckpointRecord[];
  readonly summary: CheckpointSummary;
  /** Newest epoch committed by this loop, if any. */
  readonly lastCommitted: number | undefined;
}

export class CheckpointLoop {
  readonly #o: CheckpointLoopOptions;
  readonly #records: CheckpointRecord[] = [];
  #stopping = false;
  #wake: (() => void) | undefined;
  #done: Promise<void> | undefined;
  #lastCommitted: number | undefined;

  constructor(options: CheckpointLoopOptions) {
    this.#o = options;
  }

  get records(): readonly CheckpointRecord[] {
    return this.#records;
  }

  get lastCommitted(): number | undefined {
    return this.#lastCommitted;
  }

  /** Starts the loop; the first checkpoint is taken at once. */
  start(): this {
    this.#done ??= this.#run();
    return this;
  }

  /** Resolves when the loop ended by itself (maxCheckpoints, VM gone). */
  async finished(): Promise<CheckpointLoopResult> {
    await this.#done;
    return this.#result();
  }

  /** Lets a running checkpoint finish, takes no more, and returns the records. */
  async stop(): Promise<CheckpointLoopResult> {
    this.#stopping = true;
    this.#wake?.();
    await this.#done;
    return this.#result();
  }

  #result(): CheckpointLoopResult {
    return {
      records: [...this.#records],
      summary: summarizeCheckpoints(this.#records),
      lastCommitted: this.#lastCommitted,
    };
  }

  async #run(): Promise<void> {
    const { vm, engine } = this.#o;
    const interval = this.#o.intervalMs ?? 1000;
    let epoch = this.#o.firstEpoch ?? 0;
    while (!this.#stopping && vm.state !== "exited") {
      if (this.#o.maxCheckpoints !== undefined && this.#records.length >= this.#o.maxCheckpoints) break;
      const t0 = performance.now();
      let record: CheckpointRecord;
      try {
        record = await engine.checkpoint(epoch);
        this.#lastCommitted = epoch;
      } catch (e) {
        record = failureRecord(vm.name, engine.spec, epoch, e);
      }
      this.#records.push(record);
      this.#o.onRecord?.(record);
      if (this.#o.metricsFile) await appendFile(this.#o.metricsFile, `${JSON.stringify(record)}\n`);
      // A failed epoch number is not reused: its partial part was removed, but keeping numbers
      // unique keeps the metrics unambiguous.
      epoch++;
      const wait = interval - (performance.now() - t0);
      if (wait > 0 && !this.#stopping) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, wait);
          this.#wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.#wake = undefined;
      }
    }
  }
}

function failureRecord(vmId: string, engine: string, epoch: number, e: unknown): CheckpointFailure {
  const err = e instanceof Error ? e : new Error(String(e));
  return {
    ok: false,
    vmId,
    epoch,
    engine,
    stage: EngineCheckpointError.isInstance(e) && "stage" in e ? String(e.stage) : "unknown",
    error: { name: err.name, code: (err as { code?: string }).code, message: err.message },
    startedAt: new Date().toISOString(),
  };
}
