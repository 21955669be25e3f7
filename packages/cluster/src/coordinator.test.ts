import { describe, expect, it } from "vitest";
import {
  type EpochParticipant,
  EpochRound,
  epochMetrics,
  type HostEpochReport,
  type RoundDecision,
  runGlobalEpoch,
} from "./coordinator.js";
import { EpochAbortedError } from "./errors.js";

function report(
  hostId: string,
  epoch: number,
  vms: [string, number, number][] = [[`${hostId}-vm`, 0, 1]],
): HostEpochReport {
  return {
    hostId,
    epoch,
    hostMs: 1,
    droppedFrames: 0,
    cutDrops: {},
    vms: vms.map(([vmId, pausedAt, resumedAt]) => ({
      vmId,
      pausedAt,
      resumedAt,
      pauseMs: resumedAt - pausedAt,
      soloDowntimeMs: resumedAt - pausedAt + 1,
      full: false,
      checkpointBytes: 10,
      durableMs: 5,
      heldFrames: 1,
      loggedFrames: 2,
      channelLogFrames: 2,
      steps: { stopMs: 1, contMs: pausedAt / 100 },
    })),
  };
}

describe("EpochRound (pure)", () => {
  it("commits only when every host reported, once", () => {
    const r = new EpochRound(4, ["a", "b"]);
    expect(r.prepared(report("a", 4))).toBeUndefined();
    expect(r.waitingFor).toEqual(["b"]);
    const d = r.prepared(report("b", 4));
    expect(d?.type).toBe("commit");
    expect(r.state).toBe("ready");
    expect(r.prepared(report("b", 4))).toBeUndefined();
    r.committed();
    expect(r.state).toBe("committed");
  });

  it("aborts on the first failure; later outcomes change nothing", () => {
    const r = new EpochRound(1, ["a", "b", "c"]);
    r.prepared(report("a", 1));
    expect(r.failed("b", "disk full")).toEqual({
      type: "abort",
      epoch: 1,
      failed: [{ hostId: "b", reason: "disk full" }],
    });
    expect(r.prepared(report("c", 1))).toBeUndefined();
    expect(r.timedOut()).toBeUndefined();
    expect(r.state).toBe("aborted");
  });

  it("a timeout aborts naming exactly the silent hosts", () => {
    const r = new EpochRound(2, ["a", "b", "c"]);
    r.prepared(report("b", 2));
    expect(r.timedOut()).toEqual({
      type: "abort",
      epoch: 2,
      failed: [
        { hostId: "a", reason: "timed out" },
        { hostId: "c", reason: "timed out" },
      ],
    });
  });

  it("aborts an epoch whose cut dropped a frame on any host, naming host and cause", () => {
    const r = new EpochRound(3, ["a", "b"]);
    r.prepared(report("a", 3));
    expect(r.prepared({ ...report("b", 3), droppedFrames: 2, cutDrops: { heldOverflow: 2 } })).toEqual({
      type: "abort",
      epoch: 3,
      failed: [{ hostId: "b", reason: "frames dropped across the cut (heldOverflow 2)" }],
    });
  });

  it("a report for another epoch or an unknown host aborts", () => {
    expect(new EpochRound(2, ["a"]).prepared(report("a", 1))?.type).toBe("abort");
    expect(new EpochRound(2, ["a"]).prepared(report("z", 2))?.type).toBe("abort");
  });

  it("a failed commit point turns the decision into an abort", () => {
    const r = new EpochRound(0, ["a"]);
    r.prepared(report("a", 0));
    expect(r.commitFailed("ENOSPC").type).toBe("abort");
    expect(() => r.committed()).toThrow();
  });
});

function fakeHost(id: string, behaviour: "ok" | "fail" | "hang", log: string[]): EpochParticipant {
  return {
    id,
    prepare: (e) =>
      behaviour === "ok"
        ? Promise.resolve(report(id, e))
        : behaviour === "fail"
          ? Promise.reject(new Error("engine failed"))
          : new Promise(() => undefined),
    decided: async (d: RoundDecision) => {
      log.push(`${id}:${d.type}`);
    },
  };
}

describe("runGlobalEpoch with fake hosts", () => {
  it("commits when all hosts are durable and tells every host", async () => {
    const log: string[] = [];
    const commits: number[] = [];
    const d = await runGlobalEpoch([fakeHost("a", "ok", log), fakeHost("b", "ok", log)], 7, {
      timeoutMs: 1000,
      commit: async (x) => {
        commits.push(x.epoch);
      },
    });
    expect(d.reports.map((r) => r.hostId)).toEqual(["a", "b"]);
    expect(commits).toEqual([7]);
    expect(log.sort()).toEqual(["a:commit", "b:commit"]);
  });

  it("a failing host aborts the epoch and nothing is committed", async () => {
    const log: string[] = [];
    let committed = false;
    const err = await runGlobalEpoch([fakeHost("a", "ok", log), fakeHost("b", "fail", log)], 3, {
      timeoutMs: 1000,
      commit: async () => {
        committed = true;
      },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EpochAbortedError);
    expect((err as EpochAbortedError).failedHosts).toEqual([{ hostId: "b", reason: "engine failed" }]);
    expect(committed).toBe(false);
    expect(log.sort()).toEqual(["a:abort", "b:abort"]);
  });

  it("a host that does not answer in time aborts the epoch", async () => {
    const log: string[] = [];
    const t0 = Date.now();
    const err = await runGlobalEpoch([fakeHost("a", "ok", log), fakeHost("b", "hang", log)], 5, {
      timeoutMs: 50,
      commit: async () => undefined,
    }).catch((e: unknown) => e);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(err).toMatchObject({
      code: "EPOCH_ABORTED",
      epoch: 5,
      failedHosts: [{ hostId: "b", reason: "timed out" }],
    });
  });

  it("a failed commit point aborts", async () => {
    const err = await runGlobalEpoch([fakeHost("a", "ok", [])], 1, {
      timeoutMs: 1000,
      commit: async () => {
        throw new Error("ENOSPC");
      },
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: "EPOCH_ABORTED",
      failedHosts: [{ hostId: "controller", reason: "ENOSPC" }],
    });
  });
});

describe("epochMetrics", () => {
  it("VC downtime spans first pause to last resume over all hosts; frames are summed", () => {
    const m = epochMetrics(
      [
        report("a", 3, [
          ["vm1", 100, 110],
          ["vm2", 102, 130],
        ]),
        { ...report("b", 3, [["vm3", 95, 105]]), droppedFrames: 4 },
      ],
      42,
    );
    expect(m.vcDowntimeMs).toBe(35);
    expect(m.soloDowntimeMs).toEqual({ vm1: 11, vm2: 29, vm3: 11 });
    expect(m.pauseOffsetMs).toEqual({ vm1: 5, vm2: 7, vm3: 0 });
    expect(m.steps.vm2).toEqual({ stopMs: 1, contMs: 1.02 });
    expect(m.heldFrames).toBe(3);
    expect(m.loggedFrames).toBe(6);
    expect(m.droppedFrames).toBe(4);
    expect(m.commitMs).toBe(42);
  });
});
