import { type DirtyTraceRecord, DirtyTraceWriter, PageSet, type WriteClass } from "@vpc/pageset";
import type { AttachInfo, HarvestResult } from "./client.js";

/**
 * Turns a harvest into a dirty-trace record (pure). `startNs` is when the interval really began
 * (the VM's resume, on process.hrtime.bigint()'s clock); default: the harvest's own start (the
 * previous harvest or arm, made while the VM was paused). Sync mode gives the exact order with
 * offsets from startNs; async mode gives cumulative classes, one per peek plus the harvest.
 */
export function harvestToTraceRecord(
  epoch: number,
  h: HarvestResult,
  startNs: bigint = h.startNs,
): DirtyTraceRecord {
  const offset = (t: bigint): number => (t > startNs ? Number(t - startNs) : 0);
  const base = { epoch, startNs, endNs: h.endNs > startNs ? h.endNs : startNs, dirty: h.dirty };
  const n = h.order.pages.length;
  if (h.exact) {
    const offsetsNs = new Float64Array(n);
    for (let i = 0; i < n; i++) offsetsNs[i] = offset(h.order.timesNs[i]!);
    return { ...base, order: { kind: "exact", pages: h.order.pages.slice(), offsetsNs } };
  }
  const classes: WriteClass[] = [];
  const sofar = new PageSet(h.dirty.pageCount);
  let threshold = -1;
  for (let i = 0; i < n; ) {
    const cls = h.order.classes[i];
    const t = h.order.timesNs[i]!;
    while (i < n && h.order.classes[i] === cls) sofar.add(h.order.pages[i++]!);
    threshold = Math.max(threshold + 1, offset(t));
    classes.push({ thresholdNs: threshold, pages: sofar.clone() });
  }
  return { ...base, order: classes.length ? { kind: "classes", classes } : { kind: "none" } };
}

/** Records per-interval dirty sets and first-write order of one VM into a dirty trace (.vdt). */
export class DirtyTraceRecorder {
  readonly #writer: DirtyTraceWriter;

  private constructor(writer: DirtyTraceWriter) {
    this.#writer = writer;
  }

  static async create(
    path: string,
    attachment: AttachInfo,
    metadata: Record<string, unknown> = {},
    options: { overwrite?: boolean } = {},
  ): Promise<DirtyTraceRecorder> {
    const writer = await DirtyTraceWriter.create(
      path,
      {
        pageSize: attachment.pageSize,
        pageCount: attachment.pageCount,
        guestRamBytes: attachment.ramBytes,
        trackingMode: attachment.mode,
        metadata,
      },
      options,
    );
    return new DirtyTraceRecorder(writer);
  }

  async append(epoch: number, harvest: HarvestResult, startNs?: bigint): Promise<void> {
    await this.#writer.append(harvestToTraceRecord(epoch, harvest, startNs));
  }

  async close(): Promise<void> {
    await this.#writer.close();
  }
}
