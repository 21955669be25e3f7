import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { probeKey, probeKvm, resolveAccel } from "./accel.js";
import type { GuestImage } from "./guest-image.js";
import { silentLogger } from "./logger.js";

const image: GuestImage = {
  dir: "/img",
  kernel: "/img/vmlinuz",
  initrd: "/img/initrd.img",
  clientKey: "/img/client_key",
  readyMarker: "VPC-GUEST-READY",
  kernelRelease: "6.1.0-test",
  programs: [],
  mpi: false,
  npb: [],
};

describe("accel", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "vpc-accel-test-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  /** A read-write file in place of /dev/kvm: the probe itself is the injected boot. */
  const kvmStandIn = async (): Promise<string> => {
    const path = join(dir, "kvm");
    await writeFile(path, "");
    return path;
  };

  it("never probes for tcg or an explicit kvm", async () => {
    const ctx = { image, qemuBinary: "/nonexistent", logger: silentLogger, cacheFile: join(dir, "c.json") };
    const probeBoot = () => Promise.reject(new Error("must not probe"));
    expect(await resolveAccel("tcg", { ...ctx, probeBoot })).toBe("tcg");
    expect(await resolveAccel("kvm", { ...ctx, probeBoot })).toBe("kvm");
  });

  it("probes once per key, caches the answer, and picks tcg when the probe boot fails", async () => {
    let calls = 0;
    const ctx = {
      image,
      qemuBinary: "/nonexistent",
      logger: silentLogger,
      cacheFile: join(dir, "sub", "c.json"),
      kvmDevice: await kvmStandIn(),
      probeBoot: async () => {
        calls++;
        return { ready: false, detail: "hung after Probing EDD" };
      },
    };
    expect(await resolveAccel("auto", ctx)).toBe("tcg");
    expect(await resolveAccel("auto", ctx)).toBe("tcg");
    expect(calls).toBe(1);
    const cached = JSON.parse(await readFile(ctx.cacheFile, "utf8")) as Record<string, { kvm: boolean }>;
    expect(Object.values(cached).map((r) => r.kvm)).toEqual([false]);
    // A different guest kernel is a different question.
    const other = await probeKvm({ ...ctx, image: { ...image, kernelRelease: "6.1.0-other" } });
    expect(calls).toBe(2);
    expect(other.key).not.toBe(Object.keys(cached)[0]);
  });

  it("uses kvm when the probe guest got ready", async () => {
    const ctx = {
      image,
      qemuBinary: "/nonexistent",
      logger: silentLogger,
      cacheFile: join(dir, "c.json"),
      kvmDevice: await kvmStandIn(),
      probeBoot: async () => ({ ready: true, detail: "ok" }),
    };
    expect(await resolveAccel("auto", ctx)).toBe("kvm");
  });

  it("does not probe without read-write access to the KVM device", async () => {
    const r = await probeKvm({
      image,
      qemuBinary: "/nonexistent",
      logger: silentLogger,
      cacheFile: join(dir, "c.json"),
      kvmDevice: join(dir, "no-such-device"),
      probeBoot: () => Promise.reject(new Error("must not probe")),
    });
    expect(r).toMatchObject({ kvm: false, detail: `${join(dir, "no-such-device")} not usable` });
  });

  it("keys on host, host kernel, QEMU and guest kernel", () => {
    const base = { host: "h", hostKernel: "6.18", qemuVersion: "7.2", guestKernel: "6.1" };
    expect(probeKey(base)).not.toBe(probeKey({ ...base, qemuVersion: "8.0" }));
  });
});
