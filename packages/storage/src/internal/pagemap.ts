/** Pure page-map logic: the writer's page → slot table and its conversion to index runs. */
import { ZERO_RUN } from "./format.js";

/** Page not written in this epoch. */
export const SLOT_UNSET = 0xffff_ffff;
/** Page written as all zeroes (elided from the pages file). */
export const SLOT_ZERO = 0xffff_fffe;
/** Largest slot number; keeps SLOT_UNSET / SLOT_ZERO / ZERO_RUN out of the slot range. */
export const MAX_SLOTS = 0xffff_fff0;

/**
 * Turns a page → slot table into sorted runs (firstPage, count, firstSlot | ZERO_RUN).
 * A run continues while pages are consecutive and either all zero or in consecutive slots.
 * In a full part zero pages are implicit, so zero runs are left out.
 */
export function buildRuns(slotOf: Uint32Array, full: boolean): Uint32Array {
  const out: number[] = [];
  let first = -1;
  let count = 0;
  let firstSlot = 0;
  const close = (): void => {
    if (count > 0) out.push(first, count, firstSlot);
    count = 0;
  };
  for (let p = 0; p < slotOf.length; p++) {
    const s = slotOf[p]!;
    if (s === SLOT_UNSET || (full && s === SLOT_ZERO)) {
      close();
      continue;
    }
    const zero = s === SLOT_ZERO;
    if (count > 0 && (zero ? firstSlot === ZERO_RUN : firstSlot !== ZERO_RUN && s === firstSlot + count)) {
      count++;
      continue;
    }
    close();
    first = p;
    count = 1;
    firstSlot = zero ? ZERO_RUN : s;
  }
  close();
  return Uint32Array.from(out);
}
