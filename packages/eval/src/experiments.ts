/**
 * The five experiments of issue 11 and their presets. `--quick` is sized to finish in about ten
 * minutes per experiment on a 2-core TCG machine (class S, few cells, one repetition); `--full`
 * is the evaluation plan of ARCHITECTURE §6.
 */
import { EvaluationError } from "./errors.js";
import {
  type Cell,
  type ExperimentConfig,
  type ExperimentName,
  isExperimentName,
  NO_CHECKPOINT,
  type PresetName,
} from "./format.js";

const ALL_KERNELS = ["ep", "is", "cg", "mg", "ft"];
/** The vpc engine with the controller's default strategy, which the target table compares. */
export const VPC_DEFAULT = "vpc";
const VPC_STRATEGIES = ["vpc(last)", "vpc(k-of-n:k=2,n=4)", "vpc(recency)", "vpc(early-writers)"];
const BASELINES = ["stop-copy", "cow", "precopy", "qemu-snapshot", "qemu-stop"];

type Preset = Omit<ExperimentConfig, "experiment">;

const base: Preset = {
  kernels: ["cg"],
  classes: ["S"],
  engines: [],
  vms: [1],
  hosts: [1],
  intervalsMs: [1000],
  memMiB: [256],
  chainLengths: null,
  kernelRuns: 10,
  mode: null,
  repetitions: 1,
};

const PRESETS: Record<ExperimentName, Record<PresetName, Preset>> = {
  solo: {
    quick: {
      ...base,
      kernels: ["cg", "ep"],
      engines: [NO_CHECKPOINT, "stop-copy", "cow", VPC_DEFAULT, "precopy", "qemu-snapshot", "qemu-stop"],
    },
    full: {
      ...base,
      kernels: ALL_KERNELS,
      classes: ["S", "W"],
      engines: [NO_CHECKPOINT, VPC_DEFAULT, ...VPC_STRATEGIES, ...BASELINES],
      kernelRuns: 10,
      repetitions: 3,
    },
  },
  "vc-scale": {
    // Two runs per cell: across VMs a CG.S run takes 5–15 s under TCG, ~10 epochs at 1 s.
    quick: {
      ...base,
      engines: [NO_CHECKPOINT, VPC_DEFAULT, "precopy", "stop-copy"],
      vms: [1, 2, 4],
      hosts: [2],
      kernelRuns: 2,
    },
    full: {
      ...base,
      kernels: ["cg", "is", "ft"],
      engines: [NO_CHECKPOINT, VPC_DEFAULT, "precopy", "stop-copy"],
      vms: [1, 2, 4],
      hosts: [1, 2],
      kernelRuns: 3,
      repetitions: 3,
    },
  },
  interval: {
    // 30 runs of CG.S (~15 s): enough checkpoints at a 2 s interval to take a median over.
    quick: {
      ...base,
      engines: [NO_CHECKPOINT, VPC_DEFAULT, "stop-copy"],
      intervalsMs: [500, 1000, 2000],
      kernelRuns: 30,
    },
    full: {
      ...base,
      kernels: ["cg", "mg", "ft"],
      classes: ["W"],
      engines: [NO_CHECKPOINT, VPC_DEFAULT, "stop-copy", "cow", "precopy"],
      intervalsMs: [500, 1000, 2000, 5000],
      kernelRuns: 10,
      repetitions: 3,
    },
  },
  predictor: {
    // Sync tracking: exact first-write order, so precision/recall are exact (async gives an upper bound).
    quick: {
      ...base,
      kernels: ["cg", "is"],
      engines: ["vpc(last)", "vpc(k-of-n:k=2,n=4)", "vpc(recency)"],
      mode: "sync",
      kernelRuns: 20,
    },
    full: {
      ...base,
      kernels: ALL_KERNELS,
      classes: ["S", "W"],
      engines: VPC_STRATEGIES,
      mode: "sync",
      kernelRuns: 10,
      repetitions: 2,
    },
  },
  restore: {
    // Several VMs: a virtual-cluster restore on up to 2 netns hosts (vc-restore.ts).
    quick: {
      ...base,
      engines: [VPC_DEFAULT],
      vms: [1, 2],
      hosts: [2],
      memMiB: [256, 512],
      chainLengths: [1, 4],
    },
    full: {
      ...base,
      engines: [VPC_DEFAULT, "stop-copy", "qemu-stop"],
      vms: [1, 2, 4],
      hosts: [2],
      memMiB: [256, 512, 1024],
      chainLengths: [1, 4, 16],
      repetitions: 3,
    },
  },
};

export function presetConfig(experiment: string, preset: PresetName): ExperimentConfig {
  if (!isExperimentName(experiment)) {
    throw new EvaluationError(
      "CONFIG",
      `unknown experiment "${experiment}" (known: ${Object.keys(PRESETS).join(", ")})`,
    );
  }
  return { experiment, ...PRESETS[experiment][preset] };
}

/**
 * Every cell of a config, in run order. `none` (no checkpointing) is one cell per kernel × class ×
 * VM count × repetition, not per interval, and always comes first so ratios have their baseline.
 */
export function expandCells(config: ExperimentConfig): Cell[] {
  const cells: Cell[] = [];
  const seen = new Set<string>();
  for (let rep = 0; rep < config.repetitions; rep++) {
    for (const kernel of config.kernels) {
      for (const cls of config.classes) {
        for (const vms of config.vms) {
          // More hosts than VMs means one VM per host: the cells dedupe below.
          for (const hosts of config.hosts.map((h) => Math.min(h, vms))) {
            for (const memMiB of config.memMiB) {
              for (const engine of orderEngines(config.engines)) {
                for (const intervalMs of engine === NO_CHECKPOINT ? [0] : config.intervalsMs) {
                  for (const chainLength of config.chainLengths ?? [null]) {
                    const cell: Cell = {
                      experiment: config.experiment,
                      kernel,
                      cls,
                      engine,
                      vms,
                      hosts,
                      intervalMs,
                      memMiB,
                      kernelRuns: config.kernelRuns,
                      mode: config.mode,
                      chainLength,
                      rep,
                    };
                    const key = JSON.stringify(cell);
                    if (!seen.has(key)) {
                      seen.add(key);
                      cells.push(cell);
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  }
  return cells;
}

function orderEngines(engines: readonly string[]): string[] {
  return [...engines.filter((e) => e === NO_CHECKPOINT), ...engines.filter((e) => e !== NO_CHECKPOINT)];
}
