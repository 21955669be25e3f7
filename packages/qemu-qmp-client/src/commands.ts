/**
 * Types for the QMP commands this package knows, after QEMU's QAPI schema (qapi/*.json, 7.2).
 * `execute()` checks arguments and types results for these; any other command name is accepted
 * with loose arguments and an `unknown` result.
 */

/** QEMU's RunState; other strings are allowed because newer QEMUs add states. */
export type RunState =
  | "debug"
  | "inmigrate"
  | "internal-error"
  | "io-error"
  | "paused"
  | "postmigrate"
  | "prelaunch"
  | "finish-migrate"
  | "restore-vm"
  | "running"
  | "save-vm"
  | "shutdown"
  | "suspended"
  | "watchdog"
  | "guest-panicked"
  | "colo"
  | (string & {});

export interface StatusInfo {
  readonly status: RunState;
  readonly running: boolean;
  /** Deprecated by QEMU and gone in newer versions. */
  readonly singlestep?: boolean;
}

/** Terminal states are "completed", "failed" and "cancelled". */
export type MigrationStatus =
  | "none"
  | "setup"
  | "cancelling"
  | "cancelled"
  | "active"
  | "postcopy-active"
  | "postcopy-paused"
  | "postcopy-recover"
  | "completed"
  | "failed"
  | "colo"
  | "pre-switchover"
  | "device"
  | "wait-unplug"
  | (string & {});

export interface MigrationStats {
  readonly transferred: number;
  readonly remaining: number;
  readonly total: number;
  readonly duplicate: number;
  readonly normal: number;
  readonly "normal-bytes": number;
  readonly "dirty-pages-rate": number;
  readonly mbps: number;
  readonly "dirty-sync-count": number;
  readonly [field: string]: unknown;
}

/** query-migrate's answer; every field is optional in QEMU's schema. */
export interface MigrationInfo {
  readonly status?: MigrationStatus;
  readonly ram?: MigrationStats;
  /** Milliseconds since the migration started (to its end, once completed). */
  readonly "total-time"?: number;
  /** Milliseconds the guest was stopped, once completed. */
  readonly downtime?: number;
  readonly "expected-downtime"?: number;
  readonly "setup-time"?: number;
  readonly "error-desc"?: string;
  readonly [field: string]: unknown;
}

export interface MigrationCapabilityStatus {
  /** e.g. "x-ignore-shared", "events", "background-snapshot". */
  readonly capability: string;
  readonly state: boolean;
}

export interface VersionInfo {
  readonly qemu: { readonly major: number; readonly minor: number; readonly micro: number };
  readonly package: string;
}

type Empty = Record<string, never>;

/** Argument and result types per known command. `args: undefined` means it takes none. */
export interface QmpCommands {
  qmp_capabilities: { args: { enable?: readonly string[] } | undefined; ret: Empty };
  "query-status": { args: undefined; ret: StatusInfo };
  "query-version": { args: undefined; ret: VersionInfo };
  stop: { args: undefined; ret: Empty };
  cont: { args: undefined; ret: Empty };
  quit: { args: undefined; ret: Empty };
  migrate: {
    args: { uri: string; blk?: boolean; inc?: boolean; detach?: boolean; resume?: boolean };
    ret: Empty;
  };
  "migrate-incoming": { args: { uri: string }; ret: Empty };
  migrate_cancel: { args: undefined; ret: Empty };
  "migrate-set-capabilities": { args: { capabilities: readonly MigrationCapabilityStatus[] }; ret: Empty };
  "query-migrate-capabilities": { args: undefined; ret: MigrationCapabilityStatus[] };
  "query-migrate": { args: undefined; ret: MigrationInfo };
  "human-monitor-command": { args: { "command-line": string; "cpu-index"?: number }; ret: string };
}

export type KnownCommand = keyof QmpCommands;

export interface ExecuteOptions {
  /** Reject with QmpTimeoutError if QEMU has not answered by then. Default: the client's commandTimeoutMs. */
  readonly timeoutMs?: number;
}

/** The parameters after the command name: arguments are optional only where QEMU's are. */
export type ExecuteParams<C extends KnownCommand> = undefined extends QmpCommands[C]["args"]
  ? [args?: QmpCommands[C]["args"], options?: ExecuteOptions]
  : [args: QmpCommands[C]["args"], options?: ExecuteOptions];
