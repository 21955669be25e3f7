/**
 * Error tree of @vpc/predictor:
 *
 *   PredictorError (name "PredictorError", code = PredictorErrorCode)
 *
 * `spec` names the strategy spec at fault (BAD_SPEC, UNKNOWN_STRATEGY, BAD_PARAM); `param` the
 * parameter (BAD_PARAM). Callers branch on `code`, never on the message text.
 */

const BRAND = Symbol.for("@vpc/predictor.PredictorError");

export type PredictorErrorCode =
  /** A strategy spec string does not parse. */
  | "BAD_SPEC"
  /** A strategy spec names no known strategy. */
  | "UNKNOWN_STRATEGY"
  /** A strategy parameter is unknown, missing or out of range. */
  | "BAD_PARAM"
  /** A page set or interval does not match the history's page count. */
  | "PAGE_COUNT_MISMATCH"
  /** An option of the evaluator or a generator is out of range. */
  | "INVALID_ARGUMENT";

export interface PredictorErrorOptions {
  spec?: string;
  param?: string;
  cause?: unknown;
}

export class PredictorError extends Error {
  override readonly name = "PredictorError";
  readonly code: PredictorErrorCode;
  readonly spec: string | undefined;
  readonly param: string | undefined;
  readonly [BRAND] = true;

  constructor(code: PredictorErrorCode, message: string, options: PredictorErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.spec = options.spec;
    this.param = options.param;
  }

  static isInstance(e: unknown): e is PredictorError {
    return typeof e === "object" && e !== null && BRAND in e;
  }
}
