import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseUdpCheckStatus, type UdpCheckStatus } from "./testing/udpcheck.js";

/**
 * The guest program vpc-udpcheck, built for the host and run over loopback (127.0.0.0/8 is all
 * local on Linux, so each instance gets its own source address): its checking logic against
 * crafted datagrams, and a loss-free mesh of three instances.
 */
const SOURCE = new URL("../../../images/guest/programs/vpc-udpcheck.c", import.meta.url).pathname;
const PORT = 17_450;

let dir: string;
let bin: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vpc-udpcheck-"));
  bin = join(dir, "vpc-udpcheck");
  await promisify(execFile)("gcc", ["-O2", "-Wall", "-Wextra", "-Werror", "-o", bin, SOURCE]);
});

/**
 * SIGKILLs `child` and waits until it is gone: the next test binds the same address and port,
 * which fails with EADDRINUSE while the killed instance still holds its socket (seen in CI).
 */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGKILL");
  await exited;
}

afterAll(async () => {
  await Promise.all(children.map(stop));
  await rm(dir, { recursive: true, force: true });
});

function start(
  name: string,
  bind: string,
  peers: string[],
  rate = 200,
): { child: ChildProcess; file: string } {
  const file = join(dir, `${name}.status`);
  const child = spawn(
    bin,
    ["-b", bind, "-p", String(PORT), "-r", String(rate), "-P", "50", "-f", file, ...peers],
    {
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  children.push(child);
  return { child, file };
}

/** Signals a status publish and reads the file until `ok` holds for it (5 s at most). */
async function statusWhen(
  p: { child: ChildProcess; file: string },
  ok: (s: UdpCheckStatus) => boolean,
): Promise<UdpCheckStatus> {
  let last = "";
  for (let i = 0; i < 100; i++) {
    // Signal only once the program is up (it writes the file at start).
    if (last !== "") p.child.kill("SIGUSR1");
    await new Promise((r) => setTimeout(r, 50));
    last = await readFile(p.file, "utf8").catch(() => "");
    if (last !== "" && ok(parseUdpCheckStatus(last))) return parseUdpCheckStatus(last);
  }
  throw new Error(`vpc-udpcheck status never satisfied the test; last:\n${last}`);
}

function datagram(nonce: bigint, seq: number): Buffer {
  const b = Buffer.alloc(64);
  b.write("VPCUDP1\0", 0, "latin1");
  b.writeBigUInt64BE(nonce, 8);
  b.writeBigUInt64BE(BigInt(seq), 16);
  return b;
}

describe("vpc-udpcheck", () => {
  it("counts lost, duplicated, reordered and restarted flows from crafted datagrams", async () => {
    const rx = start("rx", "127.0.0.1", []);
    await statusWhen(rx, () => true); // bound and publishing
    const tx = createSocket("udp4");
    await new Promise<void>((r) => tx.bind(0, "127.0.0.9", r));
    const send = (nonce: bigint, seq: number) =>
      new Promise<void>((r, j) => tx.send(datagram(nonce, seq), PORT, "127.0.0.1", (e) => (e ? j(e) : r())));
    try {
      for (const seq of [3, 4, 5, 7, 6, 6, 9, 2]) await send(0x1234n, seq);
      const s = await statusWhen(rx, (x) => x.flows[0]?.received === 6 && x.flows[0].stale === 1);
      expect(s.flows).toEqual([
        // 3 first (skipped 3); 8 never came: lost; 6 after 7: reordered; 6 again: duplicated; 2 before first: stale
        {
          addr: "127.0.0.9",
          received: 6,
          first: 3,
          highest: 9,
          lost: 1,
          duplicated: 1,
          reordered: 1,
          stale: 1,
          restarts: 0,
        },
      ]);
      expect(s).toMatchObject({ lost: 1, duplicated: 1, reordered: 1, stale: 1, skipped: 3, sent: 0 });
      await send(0x5678n, 0); // the sender started again: checked afresh
      const r = await statusWhen(rx, (x) => x.flows[0]?.restarts === 1);
      expect(r.flows[0]).toMatchObject({
        received: 1,
        first: 0,
        highest: 0,
        lost: 0,
        duplicated: 0,
        restarts: 1,
      });
    } finally {
      tx.close();
      await stop(rx.child);
    }
  });

  it("three instances sending to each other see every datagram once and in order", async () => {
    const addrs = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    const vms = addrs.map((a, i) =>
      start(
        `mesh${i}`,
        a,
        addrs.filter((b) => b !== a),
      ),
    );
    try {
      const all = await Promise.all(
        vms.map((v) => statusWhen(v, (s) => s.flows.length === 2 && s.flows.every((f) => f.received >= 100))),
      );
      for (const s of all) {
        expect(s.peers.map((p) => p.sent).every((n) => n >= 100)).toBe(true);
        expect(s).toMatchObject({ lost: 0, duplicated: 0, reordered: 0, stale: 0, restarts: 0 });
      }
    } finally {
      await Promise.all(vms.map((v) => stop(v.child)));
    }
  });
});
