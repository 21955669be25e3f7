import { afterEach, describe, expect, it, vi } from "vitest";
import { installSignalCleanup } from "./cli.js";

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

describe("installSignalCleanup", () => {
  const before = new Map(SIGNALS.map((s) => [s, process.listeners(s)]));
  afterEach(() => {
    // Remove only the handlers the test installed (vitest's own stay).
    for (const s of SIGNALS) {
      for (const l of process.listeners(s)) if (!before.get(s)?.includes(l)) process.off(s, l);
    }
    vi.restoreAllMocks();
  });

  it("graceful (vpc eval): the first Ctrl-C aborts the signal, the second exits 130", () => {
    const exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
    const notes: string[] = [];
    const signal = installSignalCleanup({ graceful: true, notify: (t) => notes.push(t) });
    expect(signal.aborted).toBe(false);
    process.emit("SIGINT");
    expect(signal.aborted).toBe(true);
    expect(exit).not.toHaveBeenCalled();
    expect(notes.join("")).toMatch(/SIGINT: stopping and cleaning up/);
    process.emit("SIGINT");
    expect(exit).toHaveBeenCalledWith(130);
  });

  it("other commands exit at once with 128 + the signal number", () => {
    const exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
    const signal = installSignalCleanup();
    process.emit("SIGTERM");
    expect(exit).toHaveBeenCalledWith(143);
    expect(signal.aborted).toBe(false);
  });
});
