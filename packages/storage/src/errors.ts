/**
 * Error tree of `@vpc/storage`. Callers branch on `code` (or `isInstance`), never on message text.
 *
 * StoreError                      base: code, op, path, offset, vmId, epoch, cause
 * ├─ StoreIoError         IO          a filesystem call failed (`op` names it: open, write, fsync, rename…)
 * ├─ StoreCorruptionError CORRUPT     a check failed (`what`: magic, checksum, truncated, length, …)
 * ├─ StoreVersionError    VERSION     a newer or foreign format version, or an unknown codec
 * ├─ StoreChainError      CHAIN       a hole in a VM's epoch chain (`missingEpoch`, `page`)
 * ├─ StoreNotFoundError   NOT_FOUND   no such committed epoch / VM part / store
 * ├─ StoreStateError      STATE       call not allowed now (writer already committed, store closed, …)
 * ├─ StoreLockedError     LOCKED      another live process has the store open for writing (`pid`)
 * └─ StoreArgumentError   ARGUMENT    a bad argument (vm id, epoch, page number, sizes)
 */

const BRAND = Symbol.for("vpc.storage.StoreError");

export type StoreErrorCode =
  | "IO"
  | "CORRUPT"
  | "VERSION"
  | "CHAIN"
  | "NOT_FOUND"
  | "STATE"
  | "LOCKED"
  | "ARGUMENT";

export interface StoreErrorFields {
  op?: string | undefined;
  path?: string | undefined;
  offset?: number | undefined;
  vmId?: string | undefined;
  epoch?: number | undefined;
  cause?: unknown;
}

export class StoreError extends Error {
  readonly [BRAND] = true;
  readonly code: StoreErrorCode;
  readonly op: string | undefined;
  readonly path: string | undefined;
  readonly offset: number | undefined;
  readonly vmId: string | undefined;
  readonly epoch: number | undefined;

  constructor(code: StoreErrorCode, message: string, fields: StoreErrorFields = {}) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.name = "StoreError";
    this.code = code;
    this.op = fields.op;
    this.path = fields.path;
    this.offset = fields.offset;
    this.vmId = fields.vmId;
    this.epoch = fields.epoch;
  }

  /** True for any StoreError, also one thrown by another installed copy of this package. */
  static isInstance(e: unknown): e is StoreError {
    return typeof e === "object" && e !== null && (e as Record<symbol, unknown>)[BRAND] === true;
  }
}

export class StoreIoError extends StoreError {
  readonly errno: string | undefined;
  constructor(message: string, fields: StoreErrorFields & { op: string; path: string }) {
    super("IO", message, fields);
    this.name = "StoreIoError";
    const c = fields.cause as { code?: unknown } | undefined;
    this.errno = typeof c?.code === "string" ? c.code : undefined;
  }
}

export type CorruptionKind = "magic" | "checksum" | "truncated" | "length" | "structure" | "binding";

export class StoreCorruptionError extends StoreError {
  readonly what: CorruptionKind;
  constructor(
    what: CorruptionKind,
    message: string,
    fields: StoreErrorFields & { path: string; offset: number },
  ) {
    super("CORRUPT", message, fields);
    this.name = "StoreCorruptionError";
    this.what = what;
  }
}

export class StoreVersionError extends StoreError {
  constructor(message: string, fields: StoreErrorFields & { path: string; offset: number }) {
    super("VERSION", message, fields);
    this.name = "StoreVersionError";
  }
}

export class StoreChainError extends StoreError {
  readonly missingEpoch: number;
  readonly page: number | undefined;
  constructor(
    message: string,
    fields: StoreErrorFields & { missingEpoch: number; page?: number | undefined },
  ) {
    super("CHAIN", message, fields);
    this.name = "StoreChainError";
    this.missingEpoch = fields.missingEpoch;
    this.page = fields.page;
  }
}

export class StoreNotFoundError extends StoreError {
  constructor(message: string, fields: StoreErrorFields = {}) {
    super("NOT_FOUND", message, fields);
    this.name = "StoreNotFoundError";
  }
}

export class StoreStateError extends StoreError {
  readonly state: string;
  readonly required: string;
  constructor(message: string, fields: StoreErrorFields & { state: string; required: string }) {
    super("STATE", message, fields);
    this.name = "StoreStateError";
    this.state = fields.state;
    this.required = fields.required;
  }
}

export class StoreLockedError extends StoreError {
  readonly pid: number;
  constructor(message: string, fields: StoreErrorFields & { path: string; pid: number }) {
    super("LOCKED", message, fields);
    this.name = "StoreLockedError";
    this.pid = fields.pid;
  }
}

export class StoreArgumentError extends StoreError {
  constructor(message: string, fields: StoreErrorFields = {}) {
    super("ARGUMENT", message, fields);
    this.name = "StoreArgumentError";
  }
}
