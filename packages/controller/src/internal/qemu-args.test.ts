import { describe, expect, it } from "vitest";
import { buildKernelCmdline, buildQemuArgs, deriveMac, netdevId, type QemuLaunchSpec } from "./qemu-args.js";

const spec: QemuLaunchSpec = {
  accel: "tcg",
  cpus: 1,
  memMiB: 256,
  ramPath: "/dev/shm/vpc-x/ram",
  kernel: "/img/vmlinuz",
  initrd: "/img/initrd.img",
  append: "console=ttyS0",
  qmpSocket: "/run/vpc-x/qmp.sock",
  serialLog: "/run/vpc-x/serial.log",
  sshPort: 40022,
  mgmtMac: "52:54:00:00:00:01",
  dataNics: [],
  incoming: false,
  extraArgs: [],
};

function after(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1] ?? ""] : []));
}

describe("buildQemuArgs", () => {
  it("puts guest RAM in a shared memory-backend file of the right size", () => {
    const args = buildQemuArgs(spec);
    expect(after(args, "-object")).toEqual([
      "memory-backend-file,id=mem,size=256M,mem-path=/dev/shm/vpc-x/ram,share=on",
    ]);
    expect(after(args, "-machine")).toEqual(["q35,memory-backend=mem"]);
    expect(after(args, "-m")).toEqual(["256M"]);
    expect(after(args, "-accel")).toEqual(["tcg"]);
    expect(args).toContain("-nodefaults");
    expect(after(args, "-display")).toEqual(["none"]);
  });

  it("forwards SSH from loopback only and puts the management NIC first", () => {
    const args = buildQemuArgs({
      ...spec,
      dataNics: [{ id: "d0", netdev: "stream,id=d0,addr.type=unix,addr.path=/s", mac: "52:54:00:aa:bb:cc" }],
    });
    expect(after(args, "-netdev")).toEqual([
      "user,id=mgmt,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:40022-:22",
      "stream,id=d0,addr.type=unix,addr.path=/s",
    ]);
    expect(after(args, "-device")).toEqual([
      "virtio-net-pci,netdev=mgmt,mac=52:54:00:00:00:01",
      "virtio-net-pci,netdev=d0,mac=52:54:00:aa:bb:cc",
    ]);
  });

  it("adds QMP and serial chardevs", () => {
    const args = buildQemuArgs(spec);
    expect(after(args, "-chardev")).toEqual([
      "socket,id=qmp,path=/run/vpc-x/qmp.sock,server=on,wait=off",
      "file,id=serial0,path=/run/vpc-x/serial.log",
    ]);
    expect(after(args, "-mon")).toEqual(["chardev=qmp,mode=control"]);
  });

  it("starts paused waiting for an incoming migration only on restore", () => {
    expect(buildQemuArgs(spec)).not.toContain("-incoming");
    const args = buildQemuArgs({ ...spec, incoming: true, extraArgs: ["-trace", "x"] });
    expect(args).toContain("-S");
    expect(after(args, "-incoming")).toEqual(["defer"]);
    expect(args.slice(-2)).toEqual(["-trace", "x"]);
  });
});

describe("netdevId", () => {
  it("finds the id option but not in the type position", () => {
    expect(netdevId("stream,server=off,id=x,addr.type=unix")).toBe("x");
    expect(netdevId("user")).toBeUndefined();
  });
});

describe("deriveMac", () => {
  it("is stable, locally administered QEMU-prefixed, and differs per NIC", () => {
    expect(deriveMac("vm0", 1)).toBe(deriveMac("vm0", 1));
    expect(deriveMac("vm0", 1)).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    expect(deriveMac("vm0", 1)).not.toBe(deriveMac("vm0", 2));
    expect(deriveMac("vm0", 1)).not.toBe(deriveMac("vm1", 1));
  });
});

describe("buildKernelCmdline", () => {
  it("passes the guest parameters the init script reads", () => {
    expect(
      buildKernelCmdline({
        hostname: "n1",
        ip: "192.168.77.11/24",
        hosts: { n1: "192.168.77.11", n2: "192.168.77.12" },
        kernelArgs: ["loglevel=7"],
      }),
    ).toBe(
      "console=ttyS0 random.trust_cpu=on panic=-1 no_timer_check cryptomgr.notests " +
        "initcall_blacklist=i8042_init,crypto_kdf108_init mitigations=off quiet vpc.hostname=n1 vpc.ip=192.168.77.11/24 " +
        "vpc.hosts=n1=192.168.77.11,n2=192.168.77.12 loglevel=7",
    );
  });
});
