import { describe, expect, it, vi } from "vitest";
import { QmpOverflowError } from "./errors.js";
import { nameMatcher, QmpEventListener } from "./events.js";
import type { QmpEvent } from "./protocol/messages.js";

const ev = (event: string, data: Record<string, unknown> = {}): QmpEvent => ({
  event,
  data,
  timestamp: { seconds: 0, microseconds: 0 },
});

describe("nameMatcher", () => {
  it("matches one name, a list, or everything", () => {
    expect(nameMatcher("STOP")("STOP")).toBe(true);
    expect(nameMatcher("STOP")("RESUME")).toBe(false);
    expect(nameMatcher(["STOP", "RESUME"])("RESUME")).toBe(true);
    expect(nameMatcher("*")("ANY")).toBe(true);
    expect(nameMatcher(undefined)("ANY")).toBe(true);
    expect(nameMatcher([])("ANY")).toBe(false);
  });
});

describe("QmpEventListener", () => {
  it("queues accepted events in order and filters by name and predicate", async () => {
    const listener = new QmpEventListener(
      { names: ["A", "B"], filter: (e) => e.data.keep === true },
      () => {},
    );
    listener.deliver(ev("A", { keep: true, n: 1 }));
    listener.deliver(ev("C", { keep: true }));
    listener.deliver(ev("B", { keep: false }));
    listener.deliver(ev("B", { keep: true, n: 2 }));
    expect(listener.queued).toBe(2);
    expect((await listener.next()).value?.data.n).toBe(1);
    expect((await listener.next()).value?.data.n).toBe(2);
  });

  it("wakes a waiting reader", async () => {
    const listener = new QmpEventListener({}, () => {});
    const next = listener.next();
    listener.deliver(ev("X"));
    expect((await next).value?.event).toBe("X");
  });

  it("hands out queued events after a clean finish, then ends", async () => {
    const onClose = vi.fn();
    const listener = new QmpEventListener({}, onClose);
    listener.deliver(ev("A"));
    listener.finish();
    listener.deliver(ev("late"));
    const seen: string[] = [];
    for await (const e of listener) seen.push(e.event);
    expect(seen).toEqual(["A"]);
    expect(onClose).toHaveBeenCalledTimes(1);
  });

  it("throws the finish cause once, after the queue drains, and to waiting readers", async () => {
    const cause = new Error("gone");
    const listener = new QmpEventListener({}, () => {});
    listener.deliver(ev("A"));
    listener.finish(cause);
    expect((await listener.next()).value?.event).toBe("A");
    await expect(listener.next()).rejects.toBe(cause);
    expect((await listener.next()).done).toBe(true);

    const waiting = new QmpEventListener({}, () => {});
    const pending = [waiting.next(), waiting.next()];
    waiting.finish(cause);
    for (const p of pending) await expect(p).rejects.toBe(cause);
  });

  it("close() drops the queue; break and asyncDispose close it", async () => {
    const onClose = vi.fn();
    const listener = new QmpEventListener({}, onClose);
    listener.deliver(ev("A"));
    listener.deliver(ev("B"));
    for await (const e of listener) {
      expect(e.event).toBe("A");
      break;
    }
    expect(listener.closed).toBe(true);
    expect(listener.queued).toBe(0);
    expect(onClose).toHaveBeenCalledTimes(1);

    const disposed = new QmpEventListener({}, onClose);
    {
      await using _l = disposed;
    }
    expect(disposed.closed).toBe(true);
  });

  it("ends with QmpOverflowError instead of growing without bound", async () => {
    const listener = new QmpEventListener({ maxQueued: 2 }, () => {});
    for (let i = 0; i < 5; i++) listener.deliver(ev("E", { i }));
    expect(listener.closed).toBe(true);
    await listener.next();
    await listener.next();
    const err = await listener.next().catch((e: unknown) => e);
    expect(QmpOverflowError.isInstance(err) && err.limit).toBe(2);
  });

  it("ends with the predicate's error when the predicate throws", async () => {
    const boom = new Error("bad predicate");
    const listener = new QmpEventListener(
      {
        filter: () => {
          throw boom;
        },
      },
      () => {},
    );
    listener.deliver(ev("A"));
    await expect(listener.next()).rejects.toBe(boom);
  });
});
