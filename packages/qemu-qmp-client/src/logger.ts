/**
 * Where the client reports things it handles itself (dropped replies, throwing handlers,
 * connection changes). Any method may be left out; `console` fits, and so does a thin adapter
 * over pino or winston. Nothing is logged unless a logger is given.
 */
export interface QmpLogger {
  debug?(message: string, fields?: Record<string, unknown>): void;
  info?(message: string, fields?: Record<string, unknown>): void;
  warn?(message: string, fields?: Record<string, unknown>): void;
  error?(message: string, fields?: Record<string, unknown>): void;
}

type Level = "debug" | "info" | "warn" | "error";

/** Calls the logger if it has that level; a logger that throws must not break the connection. */
export function log(
  logger: QmpLogger | undefined,
  level: Level,
  message: string,
  fields?: Record<string, unknown>,
): void {
  try {
    logger?.[level]?.(message, fields);
  } catch {
    // Logging is best effort by design: the caller's logger failing is not a QMP failure.
  }
}
