/**
 * The experiments and their presets. `--quick` is sized to finish in about ten minutes per
 * experiment on a 2-core TCG machine (class S, few cells, one repetition; `npb` and `sweep`,
 * whose point is a dirty set large enough to matter, take longer); `--full` is the evaluation
 * plan of ARCHITECTURE §6.
 */
import { EvaluationError } from "./errors.js";
import {
  type Cell,
  DIRTIER,
  type ExperimentConfig,
  type ExperimentName,
  isExperimentName,
  NO_CHECKPOINT,
  NO_CLASS,
  type PresetName,
} from "./format.js";

const ALL_KERNELS = ["ep", "is", "cg", "mg", "ft"];
/** The vpc engine with the controller's default strategy, which the target table compares. */
export const VPC_DEFAULT = "vpc";
const VPC_STRATEGIES = ["vpc(last)", "vpc(k-of-n:k=2,n=4)", "vpc(recency)", "vpc(early-writers)"];
const BASELINES = ["stop-copy", "cow", "precopy", "qemu-snapshot", "qemu-stop"];
/** Every agent engine side by side, and the QEMU peer a user has today. */
const SIDE_BY_SIDE = ["stop-copy", "cow", VPC_DEFAULT, "precopy", "qemu-snapshot"];
/**
 * Guest RAM per NPB class A kernel at one rank per VM: the peak RSS of images/npb/README.md
 * (MG 449, FT 465, IS 146, CG 41, EP 18 MiB) plus the ~85 MiB a fresh guest uses (its root
 * filesystem lives in RAM), rounded up to 512 MiB or 1 GiB.
 */
const CLASS_A_MEM_MIB: Readonly<Record<string, number>> = { ep: 512, is: 512, cg: 512, mg: 1024, ft: 1024 };

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
  npb: {
    // Where the question is real: dirty sets of thousands of pages per interval (class S dirties
    // too little to show more than fixed costs). One VM under every engine, several VMs (one rank
    // each, a virtual cluster on 2 hosts) under the agent engines (QEMU's engines checkpoint
    // one VM, not a cluster). MG.W rewrites most of its ~55 MiB every V-cycle. Quick stays at
    // 2 VMs: 4 busy-polling MPI ranks on a 2-core machine took 313 s per MG.W cell, and CG.S -n 4
    // did not finish at all (docs/cluster.md); full, with 4, wants a machine with ≥ 4 cores.
    quick: {
      ...base,
      kernels: ["mg"],
      classes: ["W"],
      engines: [NO_CHECKPOINT, ...SIDE_BY_SIDE],
      vms: [1, 2],
      hosts: [2],
      // Two runs: ~35 checkpoints on one VM; across 4 VMs a run takes ~2 min under TCG.
      kernelRuns: 2,
    },
    full: {
      ...base,
      kernels: ALL_KERNELS,
      classes: ["A"],
      engines: [NO_CHECKPOINT, ...SIDE_BY_SIDE],
      vms: [1, 4],
      hosts: [2],
      memMiB: [512],
      kernelMemMiB: CLASS_A_MEM_MIB,
      kernelRuns: 2,
      repetitions: 2,
    },
  },
  sweep: {
    // The guest's vpc-dirtier at N page writes/s with a hot fraction h; checkpoints every 1 s;
    // kernelRuns = checkpoints measured after the full base. 20k/s at h 0.2 dirties > 16k pages
    // per interval; the region (sweepRegionMiB) must fit in the guest beside its root filesystem.
    quick: {
      ...base,
      kernels: [DIRTIER],
      classes: [NO_CLASS],
      engines: SIDE_BY_SIDE,
      dirtyRates: [1000, 5000, 20000],
      hotFractions: [0.2, 0.8],
      kernelRuns: 6,
    },
    full: {
      ...base,
      kernels: [DIRTIER],
      classes: [NO_CLASS],
      engines: [...SIDE_BY_SIDE, "qemu-stop"],
      dirtyRates: [1000, 2000, 5000, 10000, 20000, 40000],
      hotFractions: [0, 0.5, 0.8, 0.95],
      memMiB: [512],
      kernelRuns: 10,
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
            for (const memMiB of memoryFor(config, kernel)) {
              for (const engine of orderEngines(config.engines)) {
                if (config.experiment === "npb" && vms > 1 && !checkpointsClusters(engine)) continue;
                for (const intervalMs of engine === NO_CHECKPOINT ? [0] : config.intervalsMs) {
                  for (const chainLength of config.chainLengths ?? [null]) {
                    for (const point of sweepPoints(config)) {
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
                        ...point,
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
  }
  return cells;
}

function memoryFor(config: ExperimentConfig, kernel: string): readonly number[] {
  const sized = config.kernelMemMiB?.[kernel];
  return sized === undefined ? config.memMiB : [sized];
}

/** A virtual cluster checkpoints through the dirty-log agent: QEMU's own engines take one VM only. */
function checkpointsClusters(engine: string): boolean {
  return !engine.startsWith("qemu-");
}

/** The sweep's rate × hot-fraction grid; one empty point for every other experiment. */
function sweepPoints(config: ExperimentConfig): Pick<Cell, "dirtyRate" | "hotFraction">[] {
  if (config.dirtyRates === undefined || config.hotFractions === undefined) return [{}];
  const hot = config.hotFractions;
  return config.dirtyRates.flatMap((dirtyRate) => hot.map((hotFraction) => ({ dirtyRate, hotFraction })));
}

function orderEngines(engines: readonly string[]): string[] {
  return [...engines.filter((e) => e === NO_CHECKPOINT), ...engines.filter((e) => e !== NO_CHECKPOINT)];
}
