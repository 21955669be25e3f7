/** Test support for the executor tests: a cell, and a context that validates and keeps every record. */
import { type Cell, type ResultRecord, validateRecord } from "./format.js";
import type { CellContext } from "./runner.js";

export function recordingContext(signal: AbortSignal = new AbortController().signal): {
  ctx: CellContext;
  records: ResultRecord[];
} {
  const records: ResultRecord[] = [];
  const ctx: CellContext = {
    id: "c",
    record: async (r) => {
      records.push(validateRecord(r, "test"));
    },
    progress: () => undefined,
    signal,
  };
  return { ctx, records };
}

/** A 2-VM, 2-host vc-scale cell of CG.S under vpc, with `o` applied. */
export function testCell(o: Partial<Cell> = {}): Cell {
  return {
    experiment: "vc-scale",
    kernel: "cg",
    cls: "S",
    engine: "vpc",
    vms: 2,
    hosts: 2,
    intervalMs: 1000,
    memMiB: 256,
    kernelRuns: 2,
    mode: null,
    chainLength: null,
    rep: 0,
    ...o,
  };
}
