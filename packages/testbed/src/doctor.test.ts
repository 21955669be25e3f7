import { describe, expect, it } from "vitest";
import { type DoctorFacts, evaluateDoctor, formatDoctorReport, parseQemuVersion } from "./doctor.js";

const healthy: DoctorFacts = {
  node: { version: "v20.20.2" },
  qemuVersion: "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)",
  qemuFiles: {
    "accel-tcg-x86_64.so": "/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so",
    "bios-256k.bin": "/usr/share/seabios/bios-256k.bin",
    "linuxboot_dma.bin": "/usr/share/qemu/linuxboot_dma.bin",
    "kvmvapic.bin": "/usr/share/qemu/kvmvapic.bin",
  },
  uffdWp: { ok: true, detail: "sync write-protect works" },
  tun: { ok: true, detail: "/dev/net/tun is usable" },
  netns: { ok: true, detail: "ip netns add/exec/del work" },
  bridge: { ok: true, detail: "ip link add/del type bridge work" },
  kvm: { devKvm: false, cached: null },
  shm: { freeBytes: 20 * 1024 ** 3, totalBytes: 24 * 1024 ** 3 },
  commands: Object.fromEntries(
    [
      "mpicc",
      "mpiexec",
      "dropbear",
      "dropbearkey",
      "dropbearconvert",
      "dbclient",
      "ip",
      "busybox",
      "cpio",
      "zstd",
      "depmod",
      "gcc",
      "make",
    ].map((n) => [n, `/usr/bin/${n}`]),
  ),
  images: {
    guest: { ok: true, detail: "build/images/guest" },
    host: { ok: true, detail: "build/images/host" },
  },
};

function check(facts: DoctorFacts, id: string) {
  const c = evaluateDoctor(facts).checks.find((x) => x.id === id);
  if (!c) throw new Error(`no check ${id}`);
  return c;
}

describe("evaluateDoctor", () => {
  it("passes a healthy machine with every check ok", () => {
    const r = evaluateDoctor(healthy);
    expect(r.ok).toBe(true);
    expect(r.checks.filter((c) => c.status !== "ok")).toEqual([]);
    expect(r.checks.map((c) => c.id)).toEqual([
      "node",
      "qemu",
      "qemu-modules",
      "qemu-firmware",
      "uffd-wp",
      "tun",
      "netns",
      "bridge",
      "kvm",
      "shm",
      "mpich",
      "dropbear",
      "iproute2",
      "image-tools",
      "guest-image",
      "host-image",
    ]);
  });

  it("names the package that installs missing QEMU, firmware and commands", () => {
    expect(check({ ...healthy, qemuVersion: null }, "qemu")).toMatchObject({
      status: "missing",
      fix: "apt-get install -y qemu-system-x86",
    });
    const fw = check(
      { ...healthy, qemuFiles: { ...healthy.qemuFiles, "bios-256k.bin": null, "kvmvapic.bin": null } },
      "qemu-firmware",
    );
    expect(fw).toMatchObject({ status: "missing", fix: "apt-get install -y seabios qemu-system-data" });
    expect(fw.detail).toContain("bios-256k.bin, kvmvapic.bin");
    const mods = check(
      { ...healthy, qemuFiles: { ...healthy.qemuFiles, "accel-tcg-x86_64.so": null } },
      "qemu-modules",
    );
    expect(mods.status).toBe("missing");
    const cmds = { ...healthy.commands, mpicc: null, dbclient: null, zstd: null };
    expect(check({ ...healthy, commands: cmds }, "mpich").fix).toBe("apt-get install -y mpich");
    expect(check({ ...healthy, commands: cmds }, "dropbear").fix).toBe("apt-get install -y dropbear-bin");
    expect(check({ ...healthy, commands: cmds }, "image-tools").fix).toBe("apt-get install -y zstd");
    expect(evaluateDoctor({ ...healthy, commands: cmds }).ok).toBe(false);
  });

  it("rejects QEMU older than 7.2 and Node older than 20", () => {
    expect(check({ ...healthy, qemuVersion: "QEMU emulator version 6.2.0" }, "qemu")).toMatchObject({
      status: "missing",
    });
    expect(check({ ...healthy, qemuVersion: "QEMU emulator version 8.0" }, "qemu").status).toBe("ok");
    expect(check({ ...healthy, node: { version: "v18.19.0" } }, "node").status).toBe("missing");
  });

  it("fails on missing kernel features, with their fix", () => {
    const r = evaluateDoctor({
      ...healthy,
      uffdWp: { ok: false, detail: "attach: Operation not permitted" },
      tun: { ok: false, detail: "/dev/net/tun: ENOENT" },
      bridge: { ok: false, detail: "Operation not supported" },
    });
    expect(r.ok).toBe(false);
    const byId = Object.fromEntries(r.checks.map((c) => [c.id, c]));
    expect(byId["uffd-wp"]?.fix).toContain("vm.unprivileged_userfaultfd");
    expect(byId.tun?.fix).toBe("modprobe tun (run as root)");
    expect(byId.bridge?.fix).toBe("modprobe bridge (run as root)");
  });

  it("advises installing iproute2 when ip is missing, else running as root", () => {
    const bad = { ok: false, detail: "failed" };
    expect(check({ ...healthy, netns: bad }, "netns").fix).toContain("run as root");
    expect(check({ ...healthy, netns: bad, commands: { ...healthy.commands, ip: null } }, "netns").fix).toBe(
      "apt-get install -y iproute2",
    );
  });

  it("warns (without failing) when the agent is unbuilt or images are missing", () => {
    const r = evaluateDoctor({
      ...healthy,
      uffdWp: { ok: "unknown", detail: "dirty-log agent not built" },
      images: { guest: { ok: false, detail: "no manifest" }, host: { ok: false, detail: "no manifest" } },
    });
    expect(r.ok).toBe(true);
    const byId = Object.fromEntries(r.checks.map((c) => [c.id, c]));
    expect(byId["uffd-wp"]?.status).toBe("warn");
    expect(byId["guest-image"]).toMatchObject({ status: "warn", fix: "make guest" });
    expect(byId["host-image"]?.fix).toBe("bash images/host/build.sh build/images/host");
  });

  it("requires free /dev/shm and says how big to remount it", () => {
    const c = check({ ...healthy, shm: { freeBytes: 1024 ** 3, totalBytes: 4 * 1024 ** 3 } }, "shm");
    expect(c).toMatchObject({ status: "missing", fix: "mount -o remount,size=5G /dev/shm" });
    expect(check({ ...healthy, shm: null }, "shm").status).toBe("missing");
  });

  it("reports KVM from the cached probe and never fails on it", () => {
    expect(check(healthy, "kvm").detail).toBe("no usable /dev/kvm: TCG");
    expect(check({ ...healthy, kvm: { devKvm: true, cached: null } }, "kvm").detail).toContain(
      "not probed yet",
    );
    const hung = check(
      {
        ...healthy,
        kvm: {
          devKvm: true,
          cached: { kvm: false, detail: "probe boot timed out", probedAt: "2026-01-01T00:00:00Z" },
        },
      },
      "kvm",
    );
    expect(hung).toMatchObject({ status: "ok", required: false });
    expect(hung.detail).toMatch(/^TCG \(probe boot 2026-01-01T00:00:00Z: probe boot timed out\)/);
  });
});

describe("parseQemuVersion", () => {
  it("reads major.minor.patch", () => {
    expect(parseQemuVersion("QEMU emulator version 7.2.22 (Debian)")).toEqual([7, 2, 22]);
    expect(parseQemuVersion("QEMU emulator version 9.1")).toEqual([9, 1, 0]);
    expect(parseQemuVersion("nonsense")).toBeNull();
  });
});

describe("formatDoctorReport", () => {
  it("prints one line per check and the fix under each missing piece", () => {
    const text = formatDoctorReport(
      evaluateDoctor({ ...healthy, commands: { ...healthy.commands, mpiexec: null } }),
    );
    expect(text).toMatch(/^\[MISS\] MPICH \(mpicc, mpiexec\)\s+not on PATH: mpiexec$/m);
    expect(text).toMatch(/^\s+fix: apt-get install -y mpich$/m);
    expect(text).toMatch(/^\[ok {2}\] QEMU \(qemu-system-x86_64\)\s+7\.2\.22$/m);
    expect(text.trimEnd().endsWith("1 required piece(s) missing.")).toBe(true);
  });
});
