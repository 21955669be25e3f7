import { describe, expect, it } from "vitest";
import { buildHostArgs, defaultTapName } from "./qemu-host-args.js";

const base = {
  name: "h1",
  memMiB: 2048,
  authorizedKeys: [],
  modulesDir: "/repo/build/images/host/modules",
  rootDir: "/",
};

describe("buildHostArgs", () => {
  it("shares the root read-only over 9p and sizes /dev/shm to 3/4 of RAM by default", () => {
    const a = buildHostArgs(base);
    expect(a.qemuArgs).toEqual([
      "-virtfs",
      "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
    ]);
    expect(a.kernelArgs).toEqual(["vpc.shm=1536M", "vpc.modules=/repo/build/images/host/modules"]);
    expect(a.fabricNetdev).toBeUndefined();
    expect(a.tap).toBeUndefined();
  });

  it("passes authorized_keys files comma-separated and an explicit shm size", () => {
    const a = buildHostArgs({ ...base, shmSize: "90%", authorizedKeys: ["/run/t/k.pub", "/etc/k2"] });
    expect(a.kernelArgs).toEqual([
      "vpc.shm=90%",
      "vpc.modules=/repo/build/images/host/modules",
      "vpc.authkeys=/run/t/k.pub,/etc/k2",
    ]);
  });

  it("asks QEMU for a pid file when given one, and rejects a relative path", () => {
    expect(buildHostArgs({ ...base, pidFile: "/run/tb/h1/qemu.pid" }).qemuArgs.slice(-2)).toEqual([
      "-pidfile",
      "/run/tb/h1/qemu.pid",
    ]);
    expect(() => buildHostArgs({ ...base, pidFile: "qemu.pid" })).toThrow(/absolute/);
  });

  it("makes a tap fabric NIC, named after the host unless given", () => {
    const a = buildHostArgs({ ...base, fabric: { ip: "10.77.0.21/24" } });
    expect(a.tap).toBe("vpcf-h1");
    expect(a.fabricNetdev).toBe("tap,id=fabric,ifname=vpcf-h1,script=no,downscript=no");
    const b = buildHostArgs({ ...base, fabric: { ip: "10.77.0.21/24", tap: "tb-h1", bridge: "vpcbr0" } });
    expect(b.fabricNetdev).toBe("tap,id=fabric,ifname=tb-h1,script=no,downscript=no");
    expect(defaultTapName("a-very-long-host-name")).toBe("vpcf-a-very-lon");
  });

  it("takes a raw netdev for the fabric instead of a tap", () => {
    const a = buildHostArgs({ ...base, fabric: { ip: "10.77.0.21/24", netdev: "hubport,hubid=0" } });
    expect(a.fabricNetdev).toBe("hubport,hubid=0,id=fabric");
    expect(a.tap).toBeUndefined();
  });

  it.each([
    [{ rootDir: "relative" }, "rootDir"],
    [{ modulesDir: "/has space/m" }, "modulesDir"],
    [{ authorizedKeys: ["/a,b"] }, "authorizedKeys[0]"],
    [{ shmSize: "lots" }, "shmSize"],
    [{ fabric: { ip: "10.77.0.2/24", tap: "this-name-is-too-long" } }, "fabric.tap"],
    [{ fabric: { ip: "10.77.0.2/24", bridge: "br 0" } }, "fabric.bridge"],
    [{ fabric: { ip: "10.77.0.2/24", netdev: "hubport,hubid=0", tap: "t0" } }, "fabric"],
    [{ fabric: { ip: "10.77.0.2/24", netdev: "hubport,id=x,hubid=0" } }, "fabric.netdev"],
  ])("rejects %j naming field %s", (over, field) => {
    expect(() => buildHostArgs({ ...base, ...over })).toThrow(
      expect.objectContaining({ code: "CONFIG_INVALID", field }),
    );
  });
});
