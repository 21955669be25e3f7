import { mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PageSet } from "./page-set.js";
import type { DirtyTraceHeader, DirtyTraceRecord } from "./trace-codec.js";
import { DirtyTraceWriter, iterateDirtyTrace, readDirtyTrace } from "./trace-io.js";

const header: DirtyTraceHeader = {
  pageSize: 4096,
  pageCount: 5000,
  guestRamBytes: 4096 * 5000,
  trackingMode: "sync",
  metadata: { workload: "io-test" },
};

function record(epoch: number): DirtyTraceRecord {
  const dirty = new PageSet(5000).addRange(epoch * 10, 100);
  return {
    epoch,
    startNs: BigInt(epoch) * 1_000_000_000n,
    endNs: BigInt(epoch + 1) * 1_000_000_000n,
    dirty,
    order: {
      kind: "exact",
      pages: dirty.toArray().reverse(),
      offsetsNs: new Float64Array(100).map((_, i) => i * 1000),
    },
  };
}

describe("trace files", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "pageset-trace-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes with DirtyTraceWriter and reads back, streamed in small chunks", async () => {
    const path = join(dir, "t.vdt");
    const w = await DirtyTraceWriter.create(path, header);
    for (let e = 1; e <= 20; e++) await w.append(record(e));
    await expect(w.append(record(3))).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await w.close();
    const trace = await readDirtyTrace(path, { chunkSize: 97 });
    expect(trace.header.metadata).toEqual({ workload: "io-test" });
    expect(trace.records.map((r) => r.epoch)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(trace.records[4]!.dirty.equals(record(5).dirty)).toBe(true);
    const types: string[] = [];
    for await (const item of iterateDirtyTrace(path)) types.push(item.type);
    expect(types[0]).toBe("header");
    expect(types.length).toBe(21);
  });

  it("refuses to overwrite unless asked", async () => {
    const path = join(dir, "t.vdt");
    await writeFile(path, "x");
    await expect(DirtyTraceWriter.create(path, header)).rejects.toMatchObject({
      code: "IO_ERROR",
      op: "open",
      path,
    });
    const w = await DirtyTraceWriter.create(path, header, { overwrite: true });
    await w.close();
    expect((await readDirtyTrace(path)).records).toEqual([]);
  });

  it("names the file and offset of a truncated record, or skips it when tolerated", async () => {
    const path = join(dir, "t.vdt");
    const w = await DirtyTraceWriter.create(path, header);
    await w.append(record(1));
    const goodSize = w.size;
    await w.append(record(2));
    await w.close();
    await truncate(path, goodSize + 5);
    await expect(readDirtyTrace(path)).rejects.toMatchObject({ code: "TRUNCATED", offset: goodSize, path });
    const tolerant = await readDirtyTrace(path, { tolerateTruncatedTail: true });
    expect(tolerant.records.length).toBe(1);
    expect(tolerant.truncatedTail).toEqual({ offset: goodSize, bytes: 5 });
  });

  it("reports a missing file as an IO_ERROR", async () => {
    await expect(readDirtyTrace(join(dir, "none"))).rejects.toMatchObject({ code: "IO_ERROR", op: "open" });
  });
});
