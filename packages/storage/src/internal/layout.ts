/** Names inside a store directory (FORMAT.md §1). Pure. */
import { StoreArgumentError } from "../errors.js";

export const STORE_FILE = "STORE";
export const LOCK_FILE = "LOCK";
export const EPOCHS_DIR = "epochs";
export const VMS_DIR = "vms";
export const TMP_DIR = "tmp";
export const TEMP_PREFIX = ".tmp-";

const VM_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function checkVmId(vmId: unknown): string {
  if (typeof vmId !== "string" || !VM_ID.test(vmId)) {
    throw new StoreArgumentError(
      `invalid VM id ${JSON.stringify(vmId)}: use 1-64 of [A-Za-z0-9._-], not starting with . _ -`,
    );
  }
  return vmId;
}

export function checkEpoch(epoch: unknown, vmId?: string): number {
  if (typeof epoch !== "number" || !Number.isSafeInteger(epoch) || epoch < 0) {
    throw new StoreArgumentError(`invalid epoch ${String(epoch)}: use a non-negative safe integer`, { vmId });
  }
  return epoch;
}

export const epoch16 = (e: number): string => String(e).padStart(16, "0");

export const globalName = (e: number): string => `${epoch16(e)}.epoch`;

export function parseGlobalName(name: string): number | undefined {
  const m = /^(\d{16})\.epoch$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** `e` = part written for an epoch, `b` = compacted base of that epoch. */
export type PartKind = "e" | "b";

export const partName = (kind: PartKind, e: number): string => `${kind}${epoch16(e)}`;

export function parsePartName(name: string): { kind: PartKind; epoch: number } | undefined {
  const m = /^([eb])(\d{16})$/.exec(name);
  return m ? { kind: m[1] as PartKind, epoch: Number(m[2]) } : undefined;
}

export function tempName(what: string): string {
  return `${TEMP_PREFIX}${what}-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}
