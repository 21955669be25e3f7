export {
  type Analysis,
  analyze,
  type ClaimRow,
  type ClaimStatus,
  type EngineSteps,
  engineSteps,
  type FailedCell,
  type GroupRow,
  type GuestFelt,
  groupRows,
} from "./analyze.js";
export { type Chart, type ChartSpec, chartSpecs, renderCharts, renderSvg } from "./charts.js";
export {
  EVAL_USAGE,
  type EvalCliDeps,
  type EvalCliIo,
  REPORT_USAGE,
  runEvalCli,
  runReportCli,
} from "./cli.js";
export {
  type DirtierParams,
  type DirtierStatus,
  type DirtierWindow,
  dirtierWindow,
  markDirtierCommand,
  parseDirtierStatus,
  startDirtierCommand,
} from "./dirtier.js";
export { EvaluationError, type EvaluationErrorCode, type EvaluationErrorOptions } from "./errors.js";
export { realExecutor } from "./executors.js";
export { expandCells, presetConfig, VPC_DEFAULT } from "./experiments.js";
export {
  type Cell,
  type CellStatus,
  type CheckpointFailureRecord,
  type CheckpointRecord,
  cellId,
  DIRTIER,
  EXPERIMENT_NAMES,
  type ExperimentConfig,
  type ExperimentName,
  type GuestStallRecord,
  type MachineFacts,
  NO_CHECKPOINT,
  NO_CLASS,
  type PresetName,
  RESULTS_FORMAT,
  type RestoredVm,
  type RestoreRecord,
  type ResultRecord,
  type RunInfo,
  type RunRecord,
  type VcCheckpointRecord,
} from "./format.js";
export { gitFacts, machineFacts } from "./machine.js";
export {
  buildReport,
  type ReportDocument,
  toHtml,
  toMarkdown,
  type WrittenReport,
  writeReport,
} from "./report.js";
export { type CellResult, type Results, readResults } from "./results-dir.js";
export {
  type CellContext,
  type CellExecutor,
  type RunOptions,
  type RunSummary,
  runExperiments,
} from "./runner.js";
export { writeSummaries } from "./summary.js";
export {
  type RunStateEvent,
  runSweepCell,
  type SweepClock,
  type SweepGuest,
  type SweepTiming,
  stoppedTime,
  sweepRegionMiB,
} from "./sweep.js";
