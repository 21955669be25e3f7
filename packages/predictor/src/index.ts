export { type CliIo, formatReport, runPredictorCli, runPredictorEval, runPredictorGenerate } from "./cli.js";
export { PredictorError, type PredictorErrorCode, type PredictorErrorOptions } from "./errors.js";
export {
  type CostModel,
  DEFAULT_COSTS,
  type EvalReport,
  type EvaluatorOptions,
  evaluateTrace,
  type FaultWindow,
  type StrategyResult,
  TraceEvaluator,
} from "./evaluate.js";
export { type EarlyWindow, earlyPages, type IntervalObservation, PageHistory } from "./history.js";
export {
  DEFAULT_STRATEGY_SPECS,
  type ParamDef,
  parseStrategy,
  STRATEGY_KINDS,
  type StrategyKind,
} from "./registry.js";
export {
  costAwareStrategy,
  earlyWritersStrategy,
  kOfNStrategy,
  lastStrategy,
  recencyStrategy,
} from "./strategies.js";
export type { RankedTier, Strategy } from "./strategy.js";
export {
  generateTrace,
  type SyntheticOptions,
  type SyntheticTrace,
  WORKLOADS,
  type Workload,
} from "./synthetic.js";
