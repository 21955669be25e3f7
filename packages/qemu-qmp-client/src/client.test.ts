import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { QMP_ID_PREFIX, QmpClient, type QmpClientOptions } from "./client.js";
import type { StatusInfo } from "./commands.js";
import {
  type QmpAddress,
  QmpCommandError,
  QmpConnectError,
  QmpDisconnectedError,
  QmpError,
  QmpInterruptedError,
  QmpMigrationError,
  QmpProtocolError,
  type QmpState,
  QmpStateError,
  QmpTimeoutError,
} from "./errors.js";
import type { QmpEvent } from "./protocol/messages.js";
import { FAKE_GREETING, FakeQmpServer, type FakeQmpServerOptions } from "./testing/fake-server.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function fakeServer(options: FakeQmpServerOptions = {}): Promise<FakeQmpServer> {
  const server = await FakeQmpServer.start(options);
  cleanups.push(() => server.close());
  return server;
}

/** A client whose every state change is recorded, closed after the test. */
function client(options: QmpClientOptions = {}): { qmp: QmpClient; states: QmpState[] } {
  const qmp = new QmpClient({ connectTimeoutMs: 2000, commandTimeoutMs: 2000, ...options });
  const states: QmpState[] = [];
  qmp.onStateChange((s) => states.push(s));
  cleanups.push(async () => {
    await qmp.close();
    // Whatever the test did, nothing may stay pending once the client is idle.
    expect(qmp.pendingCount).toBe(0);
  });
  return { qmp, states };
}

async function connected(
  serverOptions: FakeQmpServerOptions = {},
  clientOptions: QmpClientOptions = {},
): Promise<{ server: FakeQmpServer; qmp: QmpClient; states: QmpState[] }> {
  const server = await fakeServer(serverOptions);
  const { qmp, states } = client(clientOptions);
  await qmp.connect(server.address);
  return { server, qmp, states };
}

const reject = <T>(promise: Promise<T>): Promise<unknown> =>
  promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (err: unknown) => err,
  );

const idle = (qmp: QmpClient): Promise<void> =>
  new Promise((resolve) => {
    if (qmp.state === "idle") resolve();
    const off = qmp.onStateChange((s) => {
      if (s === "idle") {
        off();
        resolve();
      }
    });
  });

function recordingLogger() {
  return { debug: vi.fn(), info: vi.fn(), warn: vi.fn(), error: vi.fn() };
}

describe("connecting", () => {
  it("reads the greeting and negotiates capabilities over a unix socket", async () => {
    const { server, qmp, states } = await connected();
    expect(qmp.state).toBe("open");
    expect(states).toEqual(["connecting", "open"]);
    expect(qmp.greeting).toEqual({
      version: { qemu: { major: 7, minor: 2, micro: 0 }, package: "fake-qmp" },
      capabilities: ["oob"],
    });
    expect(server.received.map((c) => c.execute)).toEqual(["qmp_capabilities"]);
    expect(String(server.received[0]?.id).startsWith(QMP_ID_PREFIX)).toBe(true);
  });

  it("connects over TCP with the static helper", async () => {
    const server = await fakeServer({ tcp: true });
    expect("port" in server.address).toBe(true);
    const qmp = await QmpClient.connect(server.address, { connectTimeoutMs: 2000 });
    cleanups.push(() => qmp.close());
    expect(await qmp.queryStatus()).toEqual({ status: "paused", running: false, singlestep: false });
  });

  it("fails with QmpConnectError carrying the system error when nothing listens, and ends idle", async () => {
    const { qmp, states } = client();
    const address: QmpAddress = { path: "/nonexistent/qmp.sock" };
    const err = await reject(qmp.connect(address));
    expect(QmpConnectError.isInstance(err)).toBe(true);
    expect((err as QmpConnectError).address).toEqual(address);
    expect(((err as QmpConnectError).cause as NodeJS.ErrnoException).code).toBe("ENOENT");
    expect(qmp.state).toBe("idle");
    expect(states).toEqual(["connecting", "closing", "idle"]);
  });

  it("with connectRetryMs, waits for a socket that is not listening yet", async () => {
    const { qmp, states } = client({ connectRetryMs: 10 });
    const dir = await mkdtemp(join(tmpdir(), "qmp-retry-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, "qmp.sock");
    const connecting = qmp.connect({ path });
    await new Promise((r) => setTimeout(r, 60));
    const sockets: Socket[] = [];
    const server = createServer((socket) => {
      sockets.push(socket);
      socket.end(`${JSON.stringify({ QMP: FAKE_GREETING })}\r\n`);
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    cleanups.push(
      () =>
        new Promise((resolve) => {
          for (const socket of sockets) socket.destroy();
          server.close(() => resolve());
        }),
    );
    // This server hangs up after the greeting: the point is that the retry reached it.
    const err = (await reject(connecting)) as QmpConnectError;
    expect(QmpDisconnectedError.isInstance(err.cause) && err.cause.by).toBe("peer");
    expect(states.filter((s) => s === "connecting").length).toBeGreaterThan(1);
  });

  it("stops retrying when closed", async () => {
    const { qmp } = client({ connectRetryMs: 10 });
    const connecting = reject(qmp.connect({ path: "/nonexistent/qmp.sock" }));
    await new Promise((r) => setTimeout(r, 30));
    await qmp.close();
    const err = (await connecting) as QmpConnectError;
    expect(QmpConnectError.isInstance(err)).toBe(true);
    // close() lands either between attempts (the last attempt's ENOENT is the cause) or during
    // one (that attempt ends as disconnected by the client); both are correct, timing decides.
    const cause = err.cause;
    const closedDuringAttempt = QmpDisconnectedError.isInstance(cause) && cause.by === "client";
    expect(closedDuringAttempt || (cause as NodeJS.ErrnoException).code === "ENOENT").toBe(true);
    const states: string[] = [];
    qmp.onStateChange((s) => states.push(s));
    await new Promise((r) => setTimeout(r, 50));
    expect(states).toEqual([]);
    expect(qmp.state).toBe("idle");
  });

  it("times out on a missing greeting instead of hanging", async () => {
    const server = await fakeServer({ greeting: false });
    const { qmp } = client({ connectTimeoutMs: 150 });
    const started = Date.now();
    const err = await reject(qmp.connect(server.address));
    expect(Date.now() - started).toBeLessThan(1500);
    expect(QmpConnectError.isInstance(err)).toBe(true);
    const cause = (err as QmpConnectError).cause;
    expect(QmpTimeoutError.isInstance(cause) && cause.timeoutMs).toBe(150);
    expect(qmp.state).toBe("idle");
    expect(server.openConnections === 0 || (await waitFor(() => server.openConnections === 0))).toBe(true);
  });

  it("refuses a first message that is not a greeting", async () => {
    const server = await fakeServer({ greeting: '{"return": {}}\r\n' });
    const { qmp } = client();
    const err = (await reject(qmp.connect(server.address))) as QmpConnectError;
    expect(QmpProtocolError.isInstance(err.cause) && err.cause.reason).toBe("missing-greeting");
  });

  it("refuses a greeting that is not JSON", async () => {
    const server = await fakeServer({ greeting: "hello\r\n" });
    const { qmp } = client();
    const err = (await reject(qmp.connect(server.address))) as QmpConnectError;
    expect(QmpProtocolError.isInstance(err.cause) && err.cause.reason).toBe("malformed-json");
  });

  it("fails, without hanging, when a bad line follows the greeting in the same chunk", async () => {
    const greeting = `${JSON.stringify({ QMP: FAKE_GREETING })}\r\n{oops\r\n`;
    const server = await fakeServer({ greeting });
    const { qmp } = client({ connectTimeoutMs: 5000 });
    const err = (await reject(qmp.connect(server.address))) as QmpConnectError;
    // The connect error names the root cause, not the interrupted negotiation.
    expect(QmpProtocolError.isInstance(err.cause) && err.cause.reason).toBe("malformed-json");
  });

  it("never reports open when a bad line follows the negotiation reply in the same chunk", async () => {
    const server = await fakeServer({
      handlers: {
        qmp_capabilities: (c) => ({ raw: `${JSON.stringify({ return: {}, id: c.id })}\r\n[]\r\n` }),
      },
    });
    const { qmp, states } = client();
    const err = (await reject(qmp.connect(server.address))) as QmpConnectError;
    expect(QmpProtocolError.isInstance(err.cause) && err.cause.reason).toBe("unexpected-message");
    expect(states).toEqual(["connecting", "closing", "idle"]);
  });

  it("reports a refused negotiation with QEMU's error", async () => {
    const server = await fakeServer({
      handlers: { qmp_capabilities: () => ({ error: { class: "GenericError", desc: "nope" } }) },
    });
    const { qmp } = client();
    const err = (await reject(qmp.connect(server.address))) as QmpConnectError;
    expect(QmpCommandError.isInstance(err.cause) && err.cause.desc).toBe("nope");
    expect(qmp.state).toBe("idle");
  });

  it("can be closed while connecting", async () => {
    const server = await fakeServer({ greeting: false });
    const { qmp } = client();
    const connecting = reject(qmp.connect(server.address));
    await qmp.close();
    const err = (await connecting) as QmpConnectError;
    expect(QmpDisconnectedError.isInstance(err.cause) && err.cause.by).toBe("client");
    expect(qmp.state).toBe("idle");
  });
});

async function waitFor(condition: () => boolean): Promise<boolean> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  return condition();
}

describe("lifecycle", () => {
  it("guards methods by state with QmpStateError", async () => {
    const { qmp } = client();
    const err = await reject(qmp.execute("query-status"));
    expect(QmpStateError.isInstance(err)).toBe(true);
    expect(err).toMatchObject({ operation: "execute", state: "idle", required: ["open"], code: "QMP_STATE" });
    expect(() => qmp.events()).toThrow(QmpStateError);
    expect(() => qmp.greeting).toThrow(QmpStateError);
    await expect(qmp.connect()).rejects.toThrow(TypeError);

    const server = await fakeServer();
    await qmp.connect(server.address);
    await expect(qmp.connect(server.address)).rejects.toMatchObject({ state: "open", required: ["idle"] });
  });

  it("closes cleanly: idempotent, listeners end, onClose once without a cause, nothing pending", async () => {
    const { server, qmp, states } = await connected({ handlers: { "never-answers": () => undefined } });
    const onClose = vi.fn();
    qmp.onClose(onClose);
    const events = qmp.events();
    const hanging = reject(qmp.execute("never-answers"));
    await server.nextCommand("never-answers");
    expect(qmp.pendingCount).toBe(1);
    await Promise.all([qmp.close(), qmp.close()]);
    await qmp.close();
    expect(qmp.state).toBe("idle");
    expect(states).toEqual(["connecting", "open", "closing", "idle"]);
    expect(qmp.pendingCount).toBe(0);
    const err = (await hanging) as QmpInterruptedError;
    expect(QmpInterruptedError.isInstance(err)).toBe(true);
    expect(err.command).toBe("never-answers");
    expect(QmpDisconnectedError.isInstance(err.cause) && err.cause.by).toBe("client");
    expect((await events.next()).done).toBe(true);
    expect(onClose).toHaveBeenCalledTimes(1);
    expect(onClose).toHaveBeenCalledWith(undefined);
  });

  it("reconnects from idle to the same address, keeping onEvent handlers", async () => {
    const { server, qmp } = await connected();
    const seen: string[] = [];
    qmp.onEvent("*", (e) => seen.push(e.event));
    await qmp.close();
    await qmp.connect();
    expect(server.connections).toBe(2);
    expect(qmp.state).toBe("open");
    server.emitEvent("PING");
    await qmp.queryStatus();
    expect(seen).toEqual(["PING"]);
  });

  it("is usable with await using", async () => {
    const server = await fakeServer();
    let outer: QmpClient;
    {
      await using qmp = await QmpClient.connect(server.address);
      outer = qmp;
      expect(qmp.state).toBe("open");
    }
    expect(outer.state).toBe("idle");
  });

  it("rejects bad options up front", () => {
    expect(() => new QmpClient({ commandTimeoutMs: 0 })).toThrow(RangeError);
    expect(() => new QmpClient({ maxMessageBytes: 0 })).toThrow(RangeError);
  });
});

describe("commands", () => {
  it("returns typed results for known commands and unknown for others", async () => {
    const { server, qmp } = await connected({
      handlers: { "query-kvm": () => ({ return: { enabled: false } }) },
    });
    const status = await qmp.execute("query-status");
    expect(status.running).toBe(false);
    expect(await qmp.execute("query-kvm")).toEqual({ enabled: false });
    await qmp.stop();
    await qmp.cont();
    expect((await qmp.queryStatus()).status).toBe("running");
    expect(await qmp.humanMonitorCommand("info status")).toBe("VM status: running\r\n");
    expect(server.received.at(-1)?.arguments).toEqual({ "command-line": "info status" });
  });

  it("sends the typed helpers' arguments as QEMU expects them", async () => {
    const ok = () => ({ return: {} });
    const { server, qmp } = await connected({
      handlers: { migrate: ok, "migrate-incoming": ok, "migrate-set-capabilities": ok },
    });
    await qmp.migrateSetCapabilities([{ capability: "x-ignore-shared", state: true }]);
    await qmp.migrate("exec:cat > /x");
    await qmp.migrateIncoming("exec:cat /x");
    await qmp.humanMonitorCommand("info registers", { cpuIndex: 0 });
    expect(server.received.slice(1).map((c) => [c.execute, c.arguments])).toEqual([
      ["migrate-set-capabilities", { capabilities: [{ capability: "x-ignore-shared", state: true }] }],
      ["migrate", { uri: "exec:cat > /x" }],
      ["migrate-incoming", { uri: "exec:cat /x" }],
      ["human-monitor-command", { "command-line": "info registers", "cpu-index": 0 }],
    ]);
  });

  it("types known commands' arguments and results (checked by tsc, which type-checks this file)", () => {
    const usage = async (qmp: QmpClient): Promise<unknown[]> => {
      const status: StatusInfo = await qmp.execute("query-status");
      const text: string = await qmp.execute("human-monitor-command", { "command-line": "info status" });
      // @ts-expect-error migrate needs its uri
      await qmp.execute("migrate");
      // @ts-expect-error uri is a string
      await qmp.execute("migrate", { uri: 1 });
      // @ts-expect-error query-status returns StatusInfo, not a string
      const wrong: string = await qmp.execute("query-status");
      const other: unknown = await qmp.execute("query-kvm", { any: "thing" }, { timeoutMs: 5 });
      return [status, text, wrong, other];
    };
    expect(usage).toBeTypeOf("function");
  });

  it("turns QMP errors into QmpCommandError with class, desc, command and args", async () => {
    const { qmp } = await connected();
    const err = await reject(qmp.execute("no-such-command", { a: 1 }));
    expect(QmpCommandError.isInstance(err)).toBe(true);
    expect(QmpError.isInstance(err)).toBe(true);
    expect(err).toMatchObject({
      name: "QmpCommandError",
      code: "QMP_COMMAND",
      errorClass: "CommandNotFound",
      desc: "The command no-such-command has not been found",
      command: "no-such-command",
      args: { a: 1 },
    });
    expect(qmp.state).toBe("open");
  });

  it("matches many commands in flight by id, whatever order the replies come in", async () => {
    const releases: (() => void)[] = [];
    const { qmp } = await connected({
      handlers: {
        echo: (c) => new Promise((resolve) => releases.push(() => resolve({ return: c.arguments?.n }))),
      },
    });
    const calls = Array.from({ length: 50 }, (_, n) => qmp.execute("echo", { n }));
    await waitFor(() => releases.length === 50);
    expect(qmp.pendingCount).toBe(50);
    // Answer in a scrambled order: odd ones backwards, then even ones.
    const order = [...releases.keys()].sort((a, b) => (a % 2) - (b % 2) || b - a);
    for (const i of order) releases[i]!();
    expect(await Promise.all(calls)).toEqual(Array.from({ length: 50 }, (_, n) => n));
    expect(qmp.pendingCount).toBe(0);
  });

  it("times out a command, drops its late reply quietly, and stays usable", async () => {
    let release = (): void => {};
    const logger = recordingLogger();
    const { qmp } = await connected(
      { handlers: { slow: () => new Promise((r) => (release = () => r({ return: "late" }))) } },
      { logger },
    );
    const err = await reject(qmp.execute("slow", undefined, { timeoutMs: 50 }));
    expect(err).toMatchObject({ name: "QmpTimeoutError", operation: "slow", timeoutMs: 50 });
    expect(qmp.pendingCount).toBe(0);
    release();
    expect((await qmp.queryStatus()).status).toBe("paused");
    expect(logger.debug).toHaveBeenCalledWith(
      "qmp reply after its command timed out; dropped",
      expect.anything(),
    );
    expect(logger.warn).not.toHaveBeenCalled();
  });

  it("logs and drops a reply with an unexpected id", async () => {
    const logger = recordingLogger();
    const { server, qmp } = await connected({}, { logger });
    server.sendRaw('{"return": {}, "id": "stranger"}\r\n{"return": {}}\r\n');
    expect((await qmp.queryStatus()).status).toBe("paused");
    expect(logger.warn).toHaveBeenCalledTimes(2);
    expect(logger.warn.mock.calls[0]?.[1]).toMatchObject({ id: "stranger" });
    expect(qmp.state).toBe("open");
  });

  it("reassembles replies that arrive a few bytes at a time", async () => {
    const { qmp } = await connected({
      handlers: {
        trickle: (c, s) => {
          const line = `${JSON.stringify({ return: { text: "é€😀" }, id: c.id })}\r\n`;
          const bytes = Buffer.from(line);
          let at = 0;
          const timer = setInterval(() => {
            s.sendRaw(bytes.subarray(at, at + 3));
            at += 3;
            if (at >= bytes.length) clearInterval(timer);
          }, 1);
          return undefined;
        },
      },
    });
    expect(await qmp.execute("trickle")).toEqual({ text: "é€😀" });
  });
});

describe("events", () => {
  it("delivers events that arrive between and before replies without mixing them up", async () => {
    const { qmp } = await connected({
      handlers: {
        chatty: (c) => ({
          raw: [
            '{"event": "A", "data": {"n": 1}, "timestamp": {"seconds": 1, "microseconds": 2}}',
            JSON.stringify({ return: "reply", id: c.id }),
            '{"event": "B", "timestamp": {"seconds": 1, "microseconds": 3}}',
            "",
          ].join("\r\n"),
        }),
      },
    });
    const all = qmp.events();
    const onlyB = qmp.events({ names: ["B"] });
    expect(await qmp.execute("chatty")).toBe("reply");
    expect(await qmp.execute("chatty")).toBe("reply");
    expect(all.queued).toBe(4);
    expect(onlyB.queued).toBe(2);
    const first = (await all.next()).value as QmpEvent;
    expect(first).toEqual({ event: "A", data: { n: 1 }, timestamp: { seconds: 1, microseconds: 2 } });
    expect((await onlyB.next()).value?.event).toBe("B");
    // Reading one listener leaves the other's queue alone.
    expect(all.queued).toBe(3);
    expect(onlyB.queued).toBe(1);
    const rest: string[] = [];
    while (all.queued > 0) rest.push((await all.next()).value?.event ?? "");
    expect(rest).toEqual(["B", "A", "B"]);
  });

  it("runs onEvent handlers by name, list or '*', survives a throwing handler, and unsubscribes", async () => {
    const logger = recordingLogger();
    const { server, qmp } = await connected({}, { logger });
    const stops: string[] = [];
    const lists: string[] = [];
    const every: string[] = [];
    const offStop = qmp.onEvent("STOP", (e) => stops.push(e.event));
    qmp.onEvent(["STOP", "RESUME"], (e) => lists.push(e.event));
    qmp.onEvent("*", (e) => every.push(e.event));
    qmp.onEvent("*", () => {
      throw new Error("handler bug");
    });
    await qmp.cont();
    await qmp.stop();
    offStop();
    server.emitEvent("OTHER");
    await qmp.cont();
    expect(stops).toEqual(["STOP"]);
    expect(lists).toEqual(["RESUME", "STOP", "RESUME"]);
    expect(every).toEqual(["RESUME", "STOP", "OTHER", "RESUME"]);
    expect(logger.error).toHaveBeenCalledTimes(4);
  });

  it("filters listeners with a predicate and iterates them with for await", async () => {
    const { server, qmp } = await connected();
    const listener = qmp.events({ names: "MIGRATION", filter: (e) => e.data.status === "completed" });
    server.emitEvent("MIGRATION", { status: "active" });
    server.emitEvent("MIGRATION", { status: "completed" });
    for await (const e of listener) {
      expect(e.data).toEqual({ status: "completed" });
      break;
    }
    expect(listener.closed).toBe(true);
  });
});

describe("losing the connection", () => {
  it("rejects every pending command at once when QEMU dies, with the cause, and ends listeners with it", async () => {
    const { server, qmp } = await connected({ handlers: { hang: () => undefined } });
    const onClose = vi.fn();
    qmp.onClose(onClose);
    const listener = qmp.events();
    const calls = Array.from({ length: 5 }, () => reject(qmp.execute("hang")));
    await waitFor(() => server.received.length === 6);
    server.dropConnections();
    const errors = (await Promise.all(calls)) as QmpInterruptedError[];
    const cause = errors[0]?.cause;
    for (const err of errors) {
      expect(QmpInterruptedError.isInstance(err)).toBe(true);
      expect(err.cause).toBe(cause);
    }
    expect(QmpDisconnectedError.isInstance(cause) && cause.by).toBe("peer");
    expect(qmp.pendingCount).toBe(0);
    await expect(listener.next()).rejects.toBe(cause);
    await idle(qmp);
    expect(onClose).toHaveBeenCalledTimes(1);
    expect(onClose).toHaveBeenCalledWith(cause);
  });

  it.each([
    ["malformed JSON", "{not json}\r\n", "malformed-json"],
    ["a non-object message", "[1]\r\n", "unexpected-message"],
    [
      "an id-less error",
      '{"error": {"class": "GenericError", "desc": "JSON parse error"}}\r\n',
      "id-less-error",
    ],
    [
      "a second greeting",
      '{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": []}}\r\n',
      "unexpected-message",
    ],
  ])("treats %s as fatal with a QmpProtocolError", async (_, text, reason) => {
    const { server, qmp } = await connected({ handlers: { hang: () => undefined } });
    const onClose = vi.fn();
    qmp.onClose(onClose);
    const pending = reject(qmp.execute("hang"));
    await server.nextCommand("hang");
    server.sendRaw(text);
    const err = (await pending) as QmpInterruptedError;
    expect(QmpProtocolError.isInstance(err.cause)).toBe(true);
    expect(err.cause).toMatchObject({ reason, raw: text.trim() });
    await idle(qmp);
    expect(onClose).toHaveBeenCalledWith(err.cause);
  });

  it("treats a message over maxMessageBytes as fatal", async () => {
    const { server, qmp } = await connected(
      { handlers: { hang: () => undefined } },
      { maxMessageBytes: 1024 },
    );
    const pending = reject(qmp.execute("hang"));
    await server.nextCommand("hang");
    server.sendRaw(`{"return": "${"x".repeat(4000)}`);
    const err = (await pending) as QmpInterruptedError;
    expect(QmpProtocolError.isInstance(err.cause) && err.cause.reason).toBe("oversized-message");
  });

  it("names a message cut off by the end of the connection", async () => {
    const { server, qmp } = await connected({ handlers: { hang: () => undefined } });
    const pending = reject(qmp.execute("hang"));
    await server.nextCommand("hang");
    server.sendRaw('{"return": {}, "id"');
    await new Promise((r) => setTimeout(r, 20));
    server.dropConnections();
    const err = (await pending) as QmpInterruptedError;
    expect(QmpDisconnectedError.isInstance(err.cause)).toBe(true);
    const inner = (err.cause as Error).cause;
    expect(QmpProtocolError.isInstance(inner) && inner.reason).toBe("partial-message");
  });

  it("keeps a later hang-up abnormal when QEMU refuses quit", async () => {
    const { server, qmp } = await connected({
      handlers: { quit: () => ({ error: { class: "GenericError", desc: "not now" } }) },
    });
    const onClose = vi.fn();
    qmp.onClose(onClose);
    expect(await reject(qmp.quit())).toMatchObject({ errorClass: "GenericError" });
    server.dropConnections();
    await idle(qmp);
    expect(QmpDisconnectedError.isInstance(onClose.mock.calls[0]?.[0])).toBe(true);
  });

  it("quits: resolves once QEMU hung up, and counts that as a clean close", async () => {
    const { server, qmp } = await connected();
    const onClose = vi.fn();
    qmp.onClose(onClose);
    const listener = qmp.events();
    await qmp.quit();
    expect(qmp.state).toBe("idle");
    expect(server.received.at(-1)?.execute).toBe("quit");
    expect((await listener.next()).value?.event).toBe("SHUTDOWN");
    expect((await listener.next()).done).toBe(true);
    expect(onClose).toHaveBeenCalledWith(undefined);
  });
});

describe("waitForMigration", () => {
  /** A fake QEMU whose migration status the test drives; counts query-migrate calls. */
  async function migrating(options: { events: boolean }) {
    const state = { status: "active", queries: 0 };
    const result = await connected({
      handlers: {
        "query-migrate": () => {
          state.queries++;
          return {
            return: {
              status: state.status,
              ...(state.status === "failed" ? { "error-desc": "disk full" } : {}),
              ...(state.status === "completed" ? { "total-time": 7, downtime: 3 } : {}),
            },
          };
        },
      },
    });
    const set = (status: string): void => {
      state.status = status;
      if (options.events) result.server.emitEvent("MIGRATION", { status });
    };
    return { ...result, state, set };
  }

  it("polls back to back without events and resolves with the final info", async () => {
    const { qmp, state, set } = await migrating({ events: false });
    const done = qmp.waitForMigration({ timeoutMs: 2000 });
    await waitFor(() => state.queries >= 20);
    set("completed");
    expect(await done).toEqual({ status: "completed", "total-time": 7, downtime: 3 });
  });

  it("resolves only after the run state has left finish-migrate, with the final statistics", async () => {
    const { server, qmp, state, set } = await migrating({ events: false });
    let statusQueries = 0;
    server.handle("query-status", () => {
      statusQueries++;
      const status = statusQueries < 5 ? "finish-migrate" : "postmigrate";
      return { return: { status, running: false } };
    });
    set("completed");
    expect(await qmp.waitForMigration({ timeoutMs: 2000 })).toMatchObject({
      status: "completed",
      "total-time": 7,
    });
    expect(statusQueries).toBe(5);
    // One query-migrate saw "completed", one more after finish-migrate ended.
    expect(state.queries).toBe(2);
  });

  it("stops polling once MIGRATION events show up, and follows them", async () => {
    const { qmp, state, set } = await migrating({ events: true });
    const done = qmp.waitForMigration({ timeoutMs: 2000 });
    await waitFor(() => state.queries >= 1);
    set("active");
    await new Promise((r) => setTimeout(r, 50));
    const afterEvent = state.queries;
    await new Promise((r) => setTimeout(r, 50));
    // Idle between events: at most a straggler, where polling would have made hundreds of queries.
    expect(state.queries - afterEvent).toBeLessThanOrEqual(1);
    set("completed");
    expect((await done).status).toBe("completed");
  });

  it.each([
    ["failed", "disk full"],
    ["cancelled", undefined],
  ])("rejects with QmpMigrationError when the migration is %s", async (status, errorDesc) => {
    const { qmp, set } = await migrating({ events: true });
    const done = reject(qmp.waitForMigration({ timeoutMs: 2000 }));
    await new Promise((r) => setTimeout(r, 20));
    set(status);
    const err = await done;
    expect(QmpMigrationError.isInstance(err)).toBe(true);
    expect(err).toMatchObject({ status, errorDesc, code: "QMP_MIGRATION" });
  });

  it("times out, and then stops querying", async () => {
    const { qmp, state } = await migrating({ events: false });
    const err = await reject(qmp.waitForMigration({ timeoutMs: 100 }));
    expect(err).toMatchObject({ name: "QmpTimeoutError", operation: "waitForMigration", timeoutMs: 100 });
    await new Promise((r) => setTimeout(r, 20));
    const after = state.queries;
    await new Promise((r) => setTimeout(r, 50));
    expect(state.queries - after).toBeLessThanOrEqual(1);
  });

  it("rejects with the close cause when QEMU dies while waiting", async () => {
    const { server, qmp, state } = await migrating({ events: true });
    const done = reject(qmp.waitForMigration({ timeoutMs: 2000 }));
    await waitFor(() => state.queries >= 1);
    server.emitEvent("MIGRATION", { status: "active" });
    await new Promise((r) => setTimeout(r, 20));
    server.dropConnections();
    const err = await done;
    expect(QmpDisconnectedError.isInstance(err) || QmpInterruptedError.isInstance(err)).toBe(true);
  });
});
