/**
 * Object names of a store kept on the S3 API (pure). The keys mirror the directory layout of
 * FORMAT.md §1 under an optional prefix, and every object holds the bytes of the file of the same
 * name, so a fetched part is a store directory again, checked by the same checksums.
 */
import type { PartFileName } from "./format.js";
import { EPOCHS_DIR, epoch16, parseGlobalName, STORE_FILE, VMS_DIR } from "./layout.js";

/** A prefix ends in "/" unless empty; "" keeps the store at the bucket's root. */
export function normalizePrefix(prefix: string | undefined): string {
  const p = (prefix ?? "").replace(/^\/+/, "");
  return p === "" || p.endsWith("/") ? p : `${p}/`;
}

export const storeKey = (prefix: string): string => `${prefix}${STORE_FILE}`;

export const epochsPrefix = (prefix: string): string => `${prefix}${EPOCHS_DIR}/`;

export const globalKey = (prefix: string, epoch: number): string =>
  `${epochsPrefix(prefix)}${epoch16(epoch)}.epoch`;

export const partKey = (
  prefix: string,
  vmId: string,
  part: string,
  file: PartFileName | "manifest",
): string => `${prefix}${VMS_DIR}/${vmId}/${part}/${file}`;

/** The epoch named by a key under `epochs/`, or undefined for anything else. */
export function parseGlobalKey(prefix: string, key: string): number | undefined {
  const head = epochsPrefix(prefix);
  return key.startsWith(head) ? parseGlobalName(key.slice(head.length)) : undefined;
}
