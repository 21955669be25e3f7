/**
 * Errors of @vpc/eval. One class, `EvaluationError`, with a stable `code`:
 *
 * - `RESULTS_MISSING`   a results file that must exist does not (`path`)
 * - `RESULTS_CORRUPT`   a results file is not what FORMAT.md says (`path`, `line` when a JSON line)
 * - `CONFIG`            an unknown experiment, preset or option value
 * - `NOT_AVAILABLE`     an experiment's executor needs an API that does not exist yet (`needs`)
 * - `CELL_FAILED`       a cell's executor failed in a way it reported itself (`cause`)
 * - `RENDER`            a chart could not be rendered (`chart`)
 */
const BRAND = Symbol.for("@vpc/eval/EvaluationError");

export type EvaluationErrorCode =
  | "RESULTS_MISSING"
  | "RESULTS_CORRUPT"
  | "CONFIG"
  | "NOT_AVAILABLE"
  | "CELL_FAILED"
  | "RENDER";

export interface EvaluationErrorOptions {
  readonly path?: string;
  readonly line?: number;
  readonly needs?: string;
  readonly chart?: string;
  readonly cause?: unknown;
}

export class EvaluationError extends Error {
  override readonly name = "EvaluationError";
  readonly code: EvaluationErrorCode;
  readonly path: string | undefined;
  readonly line: number | undefined;
  readonly needs: string | undefined;
  readonly chart: string | undefined;
  readonly [BRAND] = true;

  constructor(code: EvaluationErrorCode, message: string, options: EvaluationErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.path = options.path;
    this.line = options.line;
    this.needs = options.needs;
    this.chart = options.chart;
  }

  /** True for an EvaluationError from any copy of this package. */
  static isInstance(e: unknown): e is EvaluationError {
    return typeof e === "object" && e !== null && (e as Record<symbol, unknown>)[BRAND] === true;
  }
}

/** The executor of a cell whose experiment needs an API that is not there yet. */
export function notAvailable(needs: string): EvaluationError {
  return new EvaluationError("NOT_AVAILABLE", `not available yet: needs ${needs}`, { needs });
}
