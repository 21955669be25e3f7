import { stat } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { QmpClient } from "./client.js";
import {
  QmpCommandError,
  QmpConnectError,
  QmpDisconnectedError,
  QmpInterruptedError,
  QmpTimeoutError,
} from "./errors.js";
import { type QemuForQmp, startQemuForQmp } from "./testing/qemu.js";

// Real QEMU (TCG, no guest image, vCPUs stopped by -S). Each test gets its own QEMU in a private
// temp dir; afterEach closes clients and SIGKILLs whatever QEMU is left.

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function qemu(): Promise<QemuForQmp> {
  const vm = await startQemuForQmp();
  cleanups.push(() => vm.dispose());
  return vm;
}

async function connect(vm: QemuForQmp): Promise<QmpClient> {
  const qmp = await QmpClient.connect(vm.qmp, {
    connectTimeoutMs: 10_000,
    connectRetryMs: 10,
    commandTimeoutMs: 20_000,
  }).catch(async (err: unknown) => {
    // Give a dying QEMU's exit a moment to be noticed, so the message says what happened.
    await Promise.race([vm.exited, new Promise((r) => setTimeout(r, 500))]);
    const exit = vm.exitStatus();
    const how = exit === undefined ? "still running" : `exited ${exit.code ?? exit.signal}`;
    throw new Error(`QEMU ${vm.pid} ${how}; stderr: ${vm.stderr()}`, { cause: err });
  });
  cleanups.push(() => qmp.close());
  return qmp;
}

describe("against a real QEMU", () => {
  it("greets, answers query-status and human-monitor-command, and reports errors typed", async () => {
    const qmp = await connect(await qemu());
    expect(qmp.greeting.version.qemu.major).toBeGreaterThanOrEqual(7);
    expect(qmp.greeting.capabilities).toContain("oob");
    expect(await qmp.queryStatus()).toMatchObject({ status: "prelaunch", running: false });
    expect(await qmp.humanMonitorCommand("info status")).toMatch(/VM status: paused \(prelaunch\)/);
    const err = await qmp.execute("no-such-command").catch((e: unknown) => e);
    expect(QmpCommandError.isInstance(err) && err.errorClass).toBe("CommandNotFound");
    const incoming = await qmp.migrateIncoming("exec:cat /dev/null").catch((e: unknown) => e);
    expect(QmpCommandError.isInstance(incoming) && incoming.errorClass).toBe("GenericError");
  });

  it("reports STOP and RESUME events to listeners and handlers", async () => {
    const qmp = await connect(await qemu());
    const listener = qmp.events({ names: ["STOP", "RESUME"] });
    const handler = vi.fn();
    qmp.onEvent("RESUME", handler);
    await qmp.cont();
    await qmp.stop();
    const first = await listener.next();
    const second = await listener.next();
    expect([first.value?.event, second.value?.event]).toEqual(["RESUME", "STOP"]);
    expect(first.value?.timestamp.seconds).toBeGreaterThan(0);
    expect(handler).toHaveBeenCalledTimes(1);
    expect((await qmp.queryStatus()).status).toBe("paused");
  });

  it.each([
    ["MIGRATION events", true],
    ["query-migrate polling", false],
  ])("migrates a stopped VM to a file and waits for it with %s", async (_, events) => {
    const vm = await qemu();
    const qmp = await connect(vm);
    await qmp.cont();
    await qmp.stop();
    await qmp.migrateSetCapabilities([{ capability: "events", state: events }]);
    const file = join(vm.dir, "state.bin");
    await qmp.migrate(`exec:cat > ${file}`);
    const info = await qmp.waitForMigration({ timeoutMs: 60_000 });
    expect(info.status).toBe("completed");
    expect((await stat(file)).size).toBeGreaterThan(0);
    expect((await qmp.queryStatus()).status).toBe("postmigrate");
  });

  it("rejects every pending command at once when QEMU is SIGKILLed mid-command", async () => {
    const vm = await qemu();
    const qmp = await connect(vm);
    const onClose = vi.fn();
    qmp.onClose(onClose);
    const listener = qmp.events();
    // SIGSTOP first so that the commands are certainly in flight when the kill lands.
    process.kill(vm.pid, "SIGSTOP");
    const calls = Array.from({ length: 20 }, () => qmp.queryStatus().catch((e: unknown) => e));
    await new Promise((r) => setTimeout(r, 50));
    expect(qmp.pendingCount).toBe(20);
    process.kill(vm.pid, "SIGKILL");
    const started = Date.now();
    const results = await Promise.all(calls);
    expect(Date.now() - started).toBeLessThan(2000);
    for (const err of results) {
      expect(QmpInterruptedError.isInstance(err)).toBe(true);
      expect(QmpDisconnectedError.isInstance((err as Error).cause)).toBe(true);
    }
    expect(qmp.pendingCount).toBe(0);
    await expect(listener.next()).rejects.toMatchObject({ by: "peer" });
    expect((await vm.exited).signal).toBe("SIGKILL");
    await vi.waitFor(() => expect(qmp.state).toBe("idle"));
    expect(onClose).toHaveBeenCalledTimes(1);
  });

  it("reconnects to the same QEMU after a clean close", async () => {
    const qmp = await connect(await qemu());
    await qmp.close();
    await qmp.connect();
    expect((await qmp.queryStatus()).status).toBe("prelaunch");
  });

  it("times out waiting for the greeting while another client holds the monitor", async () => {
    const vm = await qemu();
    await connect(vm);
    const second = new QmpClient({ connectTimeoutMs: 300 });
    const err = await second.connect(vm.qmp).catch((e: unknown) => e);
    expect(QmpConnectError.isInstance(err) && QmpTimeoutError.isInstance(err.cause)).toBe(true);
    expect(second.state).toBe("idle");
  });

  it("quits: QEMU exits and the client ends idle", async () => {
    const vm = await qemu();
    const qmp = await connect(vm);
    const shutdown = qmp.events({ names: "SHUTDOWN" });
    await qmp.quit();
    expect(qmp.state).toBe("idle");
    expect((await shutdown.next()).value?.data).toMatchObject({ guest: false });
    expect(await vm.exited).toEqual({ code: 0, signal: null });
  });
});
