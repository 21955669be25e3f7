import { describe, expect, it } from "vitest";
import { validateClusterConfig } from "./config.js";
import {
  checkGuestRam,
  configGuestMiB,
  fabricConflicts,
  parseMemAvailableMiB,
  testbedSessionDir,
  testbedSessionRoot,
} from "./testbed-session.js";

const config = validateClusterConfig({
  vm: { memMiB: 256 },
  hosts: [
    { name: "h1", vms: [{ name: "a" }, { name: "b", memMiB: 512 }] },
    { name: "h2", vms: [{ name: "c" }] },
  ],
});

describe("testbed session checks", () => {
  it("sums guest RAM and rejects more than is available, naming both figures", () => {
    expect(configGuestMiB(config)).toBe(1024);
    expect(() => checkGuestRam(config, 1024)).not.toThrow();
    expect(() => checkGuestRam(config, 1023)).toThrow(/need 1024 MiB .* 1023 MiB available/);
  });

  it("counts a qemu host's L1 RAM, not its guests' (they live inside it)", () => {
    const mixed = validateClusterConfig({
      hosts: [
        { name: "n1", vms: [{ name: "a", memMiB: 256 }] },
        { name: "q1", kind: "qemu", memMiB: 1024, vms: [{ name: "b", memMiB: 128 }] },
      ],
    });
    expect(configGuestMiB(mixed)).toBe(256 + 1024);
  });

  it("does not count an ssh host's VMs against this machine", () => {
    const remote = validateClusterConfig({
      hosts: [
        { name: "n1", vms: [{ name: "a", memMiB: 256 }] },
        { name: "r1", kind: "ssh", address: "10.9.0.5", key: "/k", vms: [{ name: "b", memMiB: 8192 }] },
      ],
    });
    expect(configGuestMiB(remote)).toBe(256);
  });

  it("reads MemAvailable in MiB", () => {
    const meminfo = "MemTotal:       24576000 kB\nMemFree:  100 kB\nMemAvailable:    2097152 kB\n";
    expect(parseMemAvailableMiB(meminfo)).toBe(2048);
    expect(() => parseMemAvailableMiB("MemTotal: 1 kB\n")).toThrow(/MemAvailable/);
  });

  it("finds machine addresses inside the fabric prefix", () => {
    const out = [
      "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever",
      "2: eth0    inet 10.77.1.5/16 brd 10.77.255.255 scope global eth0",
      "7: vpcb1234    inet 10.76.0.1/24 scope global vpcb1234",
    ].join("\n");
    expect(fabricConflicts("10.76.0.0/24", out)).toEqual(["10.76.0.1 on vpcb1234"]);
    expect(fabricConflicts("10.77.0.0/24", out)).toEqual([]);
    expect(fabricConflicts("10.77.0.0/16", out)).toEqual(["10.77.1.5 on eth0"]);
  });

  it("keeps one fixed run directory per config name", () => {
    expect(testbedSessionRoot({})).toBe("/run/vpc-testbed");
    expect(testbedSessionRoot({ VPC_TESTBED_DIR: "/tmp/x" })).toBe("/tmp/x");
    expect(testbedSessionDir("demo", "/run/vpc-testbed")).toBe("/run/vpc-testbed/demo");
  });
});
