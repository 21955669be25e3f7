import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeChannelLog } from "./channel-log.js";
import { VnetSwitch } from "./switch.js";

/**
 * Two real QEMU guests (TCG, the image from `make guest` or $VPC_GUEST_IMAGE) whose data NICs are
 * `-netdev stream,server=off,addr.type=unix` clients of one VnetSwitch; they ping each other, go
 * through a checkpoint flip each (pause inside beginCheckpoint) and ping again.
 *
 * @vpc/controller is loaded with a computed specifier: it depends on this package, so this package
 * must not depend on it (not even for types). The interface below is the part the test uses.
 */
interface GuestVm {
  run(command: string, options?: { timeoutMs?: number }): Promise<string>;
  pause(): Promise<number>;
  resume(): Promise<number>;
  shutdown(): Promise<void>;
}
interface Controller {
  loadGuestImage(): Promise<unknown>;
  Vm: {
    start(options: {
      name: string;
      image: unknown;
      dataNics: { netdev: string; mac: string }[];
      guest: { ip: string };
    }): Promise<GuestVm>;
  };
}

const CONTROLLER = "@vpc/controller";

describe("VnetSwitch with two QEMU guests", () => {
  let dir: string;
  let sw: VnetSwitch | undefined;
  const vms: GuestVm[] = [];

  beforeAll(async () => {
    const { Vm, loadGuestImage } = (await import(CONTROLLER)) as Controller;
    const image = await loadGuestImage();
    dir = await mkdtemp(join(tmpdir(), "vnet-int-"));
    sw = new VnetSwitch({ switchId: "int" });
    const guests = [
      { name: "vnet-a", port: "a", mac: "52:54:00:77:00:11", ip: "192.168.77.11/24" },
      { name: "vnet-b", port: "b", mac: "52:54:00:77:00:12", ip: "192.168.77.12/24" },
    ];
    for (const g of guests) await sw.addPort({ id: g.port, path: join(dir, `${g.port}.sock`), epoch: -1 });
    const started = await Promise.allSettled(
      guests.map((g) =>
        Vm.start({
          name: g.name,
          image,
          dataNics: [
            {
              netdev: `stream,id=data0,server=off,addr.type=unix,addr.path=${join(dir, `${g.port}.sock`)}`,
              mac: g.mac,
            },
          ],
          guest: { ip: g.ip },
        }),
      ),
    );
    for (const s of started) if (s.status === "fulfilled") vms.push(s.value);
    const failed = started.find((s) => s.status === "rejected");
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
  });

  afterAll(async () => {
    await Promise.allSettled(vms.map((v) => v.shutdown()));
    await sw?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it("connects both QEMUs, and the guests ping each other over the data NIC", async () => {
    const s = sw!;
    expect(s.stats().ports.map((p) => [p.id, p.connected])).toEqual([
      ["a", true],
      ["b", true],
    ]);
    const out = await vms[0]!.run("ping -c 3 -W 5 192.168.77.12", { timeoutMs: 30_000 });
    expect(out).toMatch(/3 packets transmitted, 3 packets received/);
    const rx = Object.fromEntries(s.stats().ports.map((p) => [p.id, p.counters.rxFrames]));
    expect(rx.a).toBeGreaterThanOrEqual(3);
    expect(rx.b).toBeGreaterThanOrEqual(3);
  });

  it("flips each port while its VM pauses, then traffic flows again and both channel logs complete", async () => {
    const s = sw!;
    const [a, b] = [vms[0]!, vms[1]!];
    // Background traffic across the checkpoints, so frames cross the cut in both directions.
    const flood = Promise.all([
      a.run("ping -c 100 -i 0.05 -W 5 192.168.77.12 >/dev/null 2>&1; true", { timeoutMs: 120_000 }),
      b.run("ping -c 100 -i 0.05 -W 5 192.168.77.11 >/dev/null 2>&1; true", { timeoutMs: 120_000 }),
    ]);
    await new Promise((r) => setTimeout(r, 500));
    await s.beginCheckpoint("a", 0, async () => {
      await a.pause();
    });
    await new Promise((r) => setTimeout(r, 200));
    await a.resume();
    // a's requests are now newer than b: they wait at b's port until b checkpoints (orphans
    // otherwise); b's requests are older than a: delivered to a and logged (in transit).
    const port = (id: string) => s.stats().ports.find((p) => p.id === id)!;
    const deadline = Date.now() + 20_000;
    while (port("b").heldNow === 0 || port("a").counters.loggedFrames === 0) {
      if (Date.now() > deadline) throw new Error("no frame was held for b and logged for a within 20 s");
      await new Promise((r) => setTimeout(r, 20));
    }
    await s.beginCheckpoint("b", 0, async () => {
      await b.pause();
    });
    await b.resume();
    await flood;
    const logs = await Promise.all(["a", "b"].map(async (p) => decodeChannelLog(await s.channelLog(p, 0))));
    for (const l of logs) expect(l.epoch).toBe(0);
    expect(s.stats().ports.map((p) => p.epoch)).toEqual([0, 0]);
    expect(logs[0]!.records.length).toBe(port("a").counters.loggedFrames);
    expect(logs[0]!.records.every((r) => r.senderPort === "b" && r.senderEpoch === -1)).toBe(true);
    expect(port("b").counters.heldFrames).toBeGreaterThan(0);
    expect(s.stats().ports.every((p) => p.heldNow === 0)).toBe(true);
    const out = await b.run("ping -c 2 -W 5 192.168.77.11", { timeoutMs: 30_000 });
    expect(out).toMatch(/2 packets received/);
  });
});
