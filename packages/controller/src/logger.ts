/** Structured logging: one JSON object per line. Inject your own `Logger` to route it elsewhere. */
import type { Writable } from "node:stream";

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface Logger {
  log(level: LogLevel, event: string, fields?: Readonly<Record<string, unknown>>): void;
  /** A logger that adds `fields` to every record. */
  child(fields: Readonly<Record<string, unknown>>): Logger;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Writes `{"ts","level","event",...fields}` lines to `stream` for records at `level` or above. */
export function createJsonLogger(
  options: { stream?: Writable; level?: LogLevel; fields?: Readonly<Record<string, unknown>> } = {},
): Logger {
  const stream = options.stream ?? process.stderr;
  const min = RANK[options.level ?? "info"];
  const base = options.fields ?? {};
  return {
    log(level, event, fields = {}) {
      if (RANK[level] < min) return;
      stream.write(
        `${JSON.stringify({ ts: new Date().toISOString(), level, event, ...base, ...fields }, errorReplacer)}\n`,
      );
    },
    child(fields) {
      return createJsonLogger({ stream, level: options.level ?? "info", fields: { ...base, ...fields } });
    },
  };
}

/** Discards everything. The default, unless `VPC_LOG` names a level (then JSON lines go to stderr). */
export const silentLogger: Logger = {
  log() {},
  child() {
    return silentLogger;
  },
};

export function defaultLogger(): Logger {
  const level = process.env.VPC_LOG;
  if (level === "debug" || level === "info" || level === "warn" || level === "error") {
    return createJsonLogger({ level });
  }
  return silentLogger;
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    return { name: value.name, message: value.message, ...("code" in value ? { code: value.code } : {}) };
  }
  if (typeof value === "bigint") return value.toString();
  return value;
}
