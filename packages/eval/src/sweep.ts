/**
 * The sweep cell: the guest's vpc-dirtier writes N pages/s (a fraction h of them to a small hot
 * set) while one engine checkpoints at the interval, and the guest's own stall probe says what
 * the guest felt, the same way for every engine.
 *
 * Why a guest-side probe: an engine measures its own downtime (agent engines: pause + the COW
 * stalls the agent timed), but qemu-snapshot reports only QEMU's internal downtime and nothing
 * of the vCPU stalls in its own write-protect faults after resume. The dirtier times its loop
 * with CLOCK_MONOTONIC and counts the gaps, whichever engine caused them. A QMP `stop` is
 * invisible from inside (QEMU stops the guest's clocks with the vCPUs), so the paused time is
 * taken from QEMU's STOP/RESUME events on the host, again the same for every engine.
 *
 * Order in a cell: start the dirtier, warm up, a baseline window without checkpoints (the noise
 * floor: host scheduling, the guest's timer), the full base checkpoint (a one-off, outside the
 * windows), then a window of `kernelRuns` incremental checkpoints. Each window is bounded by
 * two marks of the dirtier (it publishes its exact counters when signalled).
 */
import type { CheckpointRecord as ControllerRecord } from "@vpc/controller";
import {
  type DirtierStatus,
  type DirtierWindow,
  dirtierWindow,
  markDirtierCommand,
  parseDirtierStatus,
  startDirtierCommand,
} from "./dirtier.js";
import { EvaluationError } from "./errors.js";
import type { Cell, GuestStallRecord } from "./format.js";
import { recordQueue, toResultRecord } from "./records.js";
import type { CellContext } from "./runner.js";

/** A QMP STOP or RESUME event with QEMU's own timestamp. */
export interface RunStateEvent {
  readonly event: string;
  readonly timestamp: { readonly seconds: number; readonly microseconds: number };
}

/** What a sweep cell needs of its booted VM and engine (real: executors.ts; tests: a fake). */
export interface SweepGuest {
  /** Runs a shell command in the guest and resolves with its stdout; rejects on a non-zero exit. */
  run(command: string): Promise<string>;
  /** Starts recording QEMU's STOP/RESUME events; `stop()` ends it and returns them in order. */
  recordRunState(): { stop(): Promise<readonly RunStateEvent[]> };
  /** Takes `count` checkpoints from epoch `firstEpoch` at the cell's interval; each record goes to `onRecord` as it comes. */
  checkpoints(
    firstEpoch: number,
    count: number,
    onRecord: (r: ControllerRecord) => void,
  ): Promise<readonly ControllerRecord[]>;
}

export interface SweepClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export interface SweepTiming {
  /** After start, before the first mark: the region is touched and the rate settles. */
  readonly warmUpMs: number;
  /** The baseline window (no checkpoints). */
  readonly baselineMs: number;
}

export const SWEEP_TIMING: SweepTiming = { warmUpMs: 1500, baselineMs: 5000 };

/** RAM the guest keeps for itself beside the region: its root filesystem lives in RAM (~85 MiB after boot), plus sshd and the page cache. */
const GUEST_RESERVE_MIB = 160;

/**
 * The dirtier's region: room for one interval of cold writes with a quarter to spare (so they
 * are distinct pages within an interval) plus the hot set, at least 16 MiB; it must fit in the
 * guest beside GUEST_RESERVE_MIB.
 */
export function sweepRegionMiB(
  cell: Pick<Cell, "memMiB" | "intervalMs" | "dirtyRate" | "hotFraction">,
): number {
  const { rate, hot } = sweepParams(cell);
  const coldPerInterval = (1 - hot) * rate * (cell.intervalMs / 1000);
  const hotPages = (hot * rate) / 10;
  const mib = Math.max(16, Math.ceil((1.25 * (coldPerInterval + hotPages) * 4096) / 2 ** 20));
  if (mib > cell.memMiB - GUEST_RESERVE_MIB) {
    throw new EvaluationError(
      "CONFIG",
      `sweep at ${rate} pages/s, hot fraction ${hot}: the dirtier needs a ${mib} MiB region, more than a ` +
        `${cell.memMiB} MiB guest can hold beside its own ${GUEST_RESERVE_MIB} MiB; give the sweep more memMiB`,
    );
  }
  return mib;
}

function sweepParams(cell: Pick<Cell, "dirtyRate" | "hotFraction">): { rate: number; hot: number } {
  const rate = cell.dirtyRate;
  const hot = cell.hotFraction;
  if (rate === undefined || hot === undefined || !(rate > 0) || !(hot >= 0 && hot <= 1)) {
    throw new EvaluationError(
      "CONFIG",
      `a sweep cell needs dirtyRate > 0 and hotFraction in 0..1 (got ${rate}, ${hot}): set dirtyRates and hotFractions`,
    );
  }
  return { rate, hot };
}

/** Pairs STOP → RESUME on QEMU's timestamps: how often and how long the VM was stopped. */
export function stoppedTime(events: readonly RunStateEvent[]): { stops: number; stoppedMs: number } {
  const ms = (e: RunStateEvent) => e.timestamp.seconds * 1000 + e.timestamp.microseconds / 1000;
  let stops = 0;
  let stoppedMs = 0;
  let stoppedAt: number | undefined;
  for (const e of events) {
    if (e.event === "STOP") {
      if (stoppedAt !== undefined) throw unpaired("two STOP events without a RESUME between them");
      stoppedAt = ms(e);
    } else if (e.event === "RESUME") {
      if (stoppedAt === undefined) throw unpaired("a RESUME event without a STOP before it");
      stops++;
      stoppedMs += ms(e) - stoppedAt;
      stoppedAt = undefined;
    }
  }
  if (stoppedAt !== undefined) throw unpaired("the VM was still stopped at the end of the window");
  return { stops, stoppedMs };
}

function unpaired(why: string): EvaluationError {
  return new EvaluationError("CELL_FAILED", `QEMU run-state events: ${why}`);
}

function stallRecord(
  phase: GuestStallRecord["phase"],
  checkpoints: number,
  window: DirtierWindow,
  hostWindowMs: number,
  events: readonly RunStateEvent[],
): GuestStallRecord {
  return { type: "guest-stall", phase, checkpoints, ...window, hostWindowMs, ...stoppedTime(events) };
}

/** Runs one sweep cell on `guest`; records every checkpoint and the two guest-stall windows. */
export async function runSweepCell(
  cell: Cell,
  ctx: CellContext,
  guest: SweepGuest,
  clock: SweepClock,
  timing: SweepTiming = SWEEP_TIMING,
): Promise<void> {
  const { rate, hot } = sweepParams(cell);
  const regionMiB = sweepRegionMiB(cell);
  const sink = recordQueue(ctx);
  const pushCheckpoint = (r: ControllerRecord) => sink.push(toResultRecord(r));

  ctx.progress(`vpc-dirtier: ${rate} pages/s, hot fraction ${hot}, ${regionMiB} MiB region`);
  const pid = Number(
    (await guest.run(startDirtierCommand({ regionMiB, pagesPerSecond: rate, hotFraction: hot }))).trim(),
  );
  let marks = 0;
  const mark = async (): Promise<DirtierStatus> => {
    marks++;
    const out = await guest.run(markDirtierCommand(pid, marks));
    return parseDirtierStatus(out.trim().split("\n").at(-1) ?? "");
  };
  await clock.sleep(timing.warmUpMs);
  const started = await mark();

  ctx.progress(`baseline: ${timing.baselineMs / 1000} s without checkpoints`);
  let events = guest.recordRunState();
  let t0 = clock.now();
  await clock.sleep(timing.baselineMs);
  const baselineEnd = await mark();
  sink.push(
    stallRecord("baseline", 0, dirtierWindow(started, baselineEnd), clock.now() - t0, await events.stop()),
  );

  ctx.progress(`full base checkpoint under ${cell.engine}`);
  const [base] = await guest.checkpoints(0, 1, pushCheckpoint);
  if (!base?.ok) {
    await sink.flush();
    throw new EvaluationError(
      "CELL_FAILED",
      `the full base checkpoint failed${base && !base.ok ? ` at ${base.stage}: ${base.error.message}` : ""}`,
    );
  }

  ctx.progress(`${cell.kernelRuns} checkpoints every ${cell.intervalMs} ms`);
  const windowStart = await mark();
  events = guest.recordRunState();
  t0 = clock.now();
  const records = await guest.checkpoints(1, cell.kernelRuns, pushCheckpoint);
  const windowEnd = await mark();
  const hostWindowMs = clock.now() - t0;
  sink.push(
    stallRecord(
      "checkpointing",
      records.filter((r) => r.ok).length,
      dirtierWindow(windowStart, windowEnd),
      hostWindowMs,
      await events.stop(),
    ),
  );
  await sink.flush();
}
