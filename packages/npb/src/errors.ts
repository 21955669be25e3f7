/**
 * Error tree of @vpc/npb:
 *
 *   NpbError (name "NpbError", code = one of NpbErrorCode)
 *
 * Callers branch on `code` and the data fields (`field`, `exitCode`, `stderr`, `path`), never on
 * the message text. `isInstance` checks a `Symbol.for` brand so it works across package copies.
 */

const NPB_ERROR_BRAND = Symbol.for("@vpc/npb.NpbError");

export type NpbErrorCode =
  /** The output has no "<XX> Benchmark Completed." result block. */
  | "RESULT_MISSING"
  /** A result block exists but a required field is absent or unparsable (see `field`). */
  | "RESULT_MALFORMED"
  /** An argument is not acceptable (unknown kernel or class, bad process count, ...). */
  | "INVALID_ARGUMENT"
  /** The kernel binary is not in the bin dir (see `path`): run `make npb` first. */
  | "BINARY_MISSING"
  /** mpiexec could not be started (see `cause`). */
  | "SPAWN_FAILED"
  /** The run exceeded its timeout and was killed. */
  | "TIMEOUT"
  /** The run was aborted through its AbortSignal and was killed. */
  | "ABORTED"
  /** mpiexec exited non-zero or by a signal (see `exitCode`, `signal`, `stderr`). */
  | "EXIT_FAILURE";

export interface NpbErrorOptions {
  cause?: unknown;
  /** Result-block label that is missing or malformed. */
  field?: string;
  /** Binary path, for BINARY_MISSING. */
  path?: string;
  exitCode?: number | null;
  signal?: string | null;
  /** Captured stdout/stderr of the failed run (whole, as received). */
  stdout?: string;
  stderr?: string;
}

export class NpbError extends Error {
  override readonly name: string = "NpbError";
  readonly code: NpbErrorCode;
  readonly field: string | undefined;
  readonly path: string | undefined;
  readonly exitCode: number | null | undefined;
  readonly signal: string | null | undefined;
  readonly stdout: string | undefined;
  readonly stderr: string | undefined;
  readonly [NPB_ERROR_BRAND] = true;

  constructor(code: NpbErrorCode, message: string, options: NpbErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.field = options.field;
    this.path = options.path;
    this.exitCode = options.exitCode;
    this.signal = options.signal;
    this.stdout = options.stdout;
    this.stderr = options.stderr;
  }

  static isInstance(e: unknown): e is NpbError {
    return typeof e === "object" && e !== null && NPB_ERROR_BRAND in e;
  }
}
