export {
  type Analysis,
  analyze,
  type ClaimRow,
  type ClaimStatus,
  type FailedCell,
  type GroupRow,
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
export { EvaluationError, type EvaluationErrorCode, type EvaluationErrorOptions } from "./errors.js";
export { realExecutor } from "./executors.js";
export { expandCells, presetConfig, VPC_DEFAULT } from "./experiments.js";
export {
  type Cell,
  type CellStatus,
  type CheckpointFailureRecord,
  type CheckpointRecord,
  cellId,
  EXPERIMENT_NAMES,
  type ExperimentConfig,
  type ExperimentName,
  type MachineFacts,
  NO_CHECKPOINT,
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
