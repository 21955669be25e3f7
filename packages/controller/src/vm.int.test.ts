import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFullCheckpoint, restoreOptionsFor, takeFullCheckpoint } from "./checkpoint.js";
import { BootError, VmStateError } from "./errors.js";
import { findCounterInRam, readCounter, startCounter } from "./guest-counter.js";
import { type GuestImage, loadGuestImage } from "./guest-image.js";
import { Vm } from "./vm.js";

// Real QEMU under TCG with the image from `make guest` (or $VPC_GUEST_IMAGE).
describe("Vm (real QEMU, TCG)", () => {
  let image: GuestImage;
  let vm: Vm | undefined;
  let restored: Vm | undefined;
  let work: string;

  beforeAll(async () => {
    image = await loadGuestImage();
    work = await mkdtemp(join(tmpdir(), "vpc-vm-int-"));
    // A data NIC on a QEMU hub with no other port: exercises the guest's eth1 set-up without a peer.
    vm = await Vm.start({
      name: "int0",
      image,
      dataNics: ["hubport,id=d0,hubid=0"],
      guest: { ip: "192.168.77.11/24", hosts: { int0: "192.168.77.11", int1: "192.168.77.12" } },
    });
  });

  afterAll(async () => {
    await vm?.shutdown();
    await restored?.shutdown();
    await rm(work, { recursive: true, force: true });
  });

  it("boots to the ready marker and runs commands over one SSH connection", async () => {
    const v = vm!;
    expect(v.state).toBe("running");
    expect(v.accel).toBe("tcg");
    expect((await stat(v.ramPath)).size).toBe(256 * 1024 * 1024);
    expect((await stat(v.shmDir)).mode & 0o777).toBe(0o700);
    expect((await stat(v.runDir)).mode & 0o777).toBe(0o700);
    expect(await v.run("hostname")).toBe("int0\n");
    const r = await v.exec("echo out; echo err >&2; exit 3");
    expect(r).toEqual({ stdout: "out\n", stderr: "err\n", exitCode: 3, signal: null });
    await expect(v.run("false")).rejects.toMatchObject({ code: "GUEST_COMMAND_FAILED", exitCode: 1 });
    expect(await v.run("ip -4 addr show eth0")).toContain("10.0.2.15/24");
    expect(await v.run("ip -4 addr show eth1")).toContain("192.168.77.11/24");
    expect(await v.run("cat /etc/hosts")).toContain("192.168.77.12 int1");
    expect(await v.run("cat /sys/class/net/eth1/address")).toBe(`${v.config.dataNics[0]?.mac}\n`);
  });

  it("runs MPI in the guest: mpiexec, the ssh wrapper over the data NIC, an NPB kernel", async (ctx) => {
    if (!image.npb.includes("ep")) ctx.skip(); // image built before the NPB binaries existed
    const v = vm!;
    expect(await v.run("ssh 192.168.77.11 hostname", { timeoutMs: 60_000 })).toBe("int0\n");
    const out = await v.run("mpiexec -n 2 /opt/npb/bin/ep S", { timeoutMs: 120_000 });
    expect(out).toMatch(/Verification\s+=\s+SUCCESSFUL/);
  });

  it("pauses, saves device state through both transports, and resumes", async () => {
    const v = vm!;
    const first = await startCounter(v);
    await v.pause();
    expect((await v.qmp.queryStatus()).running).toBe(false);
    await expect(v.exec("true")).rejects.toBeInstanceOf(VmStateError);
    const viaExec = await v.saveDeviceState(join(work, "ds-exec"), { transport: "exec" });
    await expect(v.saveDeviceState(join(work, "again"))).rejects.toBeInstanceOf(VmStateError);
    await v.resume();
    await v.pause();
    const viaUnix = await v.saveDeviceState(join(work, "ds-unix"), { transport: "unix" });
    // Device state only: far smaller than the 256 MiB of guest RAM.
    for (const s of [viaExec, viaUnix]) {
      expect(s.bytes).toBeGreaterThan(10_000);
      expect(s.bytes).toBeLessThan(8 * 1024 * 1024);
    }
    await v.resume();
    await new Promise((r) => setTimeout(r, 500));
    expect((await readCounter(v)).value).toBeGreaterThan(first.value);
  });

  it("restores from a checkpoint after SIGKILL and the counter continues from the checkpoint", async () => {
    const v = vm!;
    const before = await readCounter(v);
    await v.pause();
    const cp = await takeFullCheckpoint(v, join(work, "cp"));
    await v.resume();
    expect(cp.ramBytes).toBe(256 * 1024 * 1024);
    const atCheckpoint = await findCounterInRam(cp.ramFile, before.nonce);
    expect(atCheckpoint).toBeDefined();
    expect(atCheckpoint!).toBeGreaterThanOrEqual(before.value);

    await new Promise((r) => setTimeout(r, 3000));
    const beforeKill = await readCounter(v);
    expect(beforeKill.value).toBeGreaterThan(atCheckpoint!);
    const { shmDir, runDir } = v;
    await v.kill();
    expect(v.state).toBe("exited");
    expect(existsSync(shmDir)).toBe(false);
    expect(existsSync(runDir)).toBe(false);
    vm = undefined;

    restored = await Vm.restore(restoreOptionsFor(await readFullCheckpoint(cp.dir), { image }));
    const after = await readCounter(restored);
    expect(after.nonce).toBe(before.nonce);
    expect(after.value).toBeGreaterThanOrEqual(atCheckpoint!);
    expect(after.value).toBeLessThan(beforeKill.value);
    await new Promise((r) => setTimeout(r, 500));
    expect((await readCounter(restored)).value).toBeGreaterThan(after.value);
  });

  it("fails a boot that times out with the serial console tail, leaving nothing behind", async () => {
    const before = new Set(await readdir("/dev/shm"));
    const err = await Vm.start({ name: "int-timeout", image, bootTimeoutMs: 1500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BootError);
    expect((err as BootError).reason).toBe("timeout");
    expect((err as BootError).message).toContain("serial console");
    const leftovers = (await readdir("/dev/shm")).filter(
      (f) => !before.has(f) && f.startsWith("vpc-int-timeout"),
    );
    expect(leftovers).toEqual([]);
  });
});
