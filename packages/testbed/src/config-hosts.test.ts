import { validateClusterConfig } from "@vpc/cluster";
import { describe, expect, it } from "vitest";
import {
  checkGuestRam,
  checkSshKeys,
  configGuestMiB,
  fabricConflicts,
  freeFabricPrefix,
  namedTestbedDir,
  namedTestbedsRoot,
  parseMemAvailableMiB,
  usesFabric,
} from "./config-hosts.js";

const config = validateClusterConfig({
  vm: { memMiB: 256 },
  hosts: [
    { name: "h1", vms: [{ name: "a" }, { name: "b", memMiB: 512 }] },
    { name: "h2", vms: [{ name: "c" }] },
  ],
});

describe("config hosts checks", () => {
  it("sums guest RAM and rejects more than is available, naming both figures", () => {
    expect(configGuestMiB(config)).toBe(1024);
    expect(() => checkGuestRam(config, 1024)).not.toThrow();
    expect(() => checkGuestRam(config, 1023)).toThrow(
      /need 1024 MiB of this machine's RAM \(h1 768 MiB, h2 256 MiB\) but it has 1023 MiB available.*lower vm\.memMiB/,
    );
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

  it("suggests the first free 10.N.0.0/24 from 10.70 on", () => {
    const out = [
      "7: vpcb1234    inet 10.70.0.1/24 scope global vpcb1234",
      "8: vpcb5678    inet 10.71.0.1/24 scope global vpcb5678",
    ].join("\n");
    expect(freeFabricPrefix(out)).toBe("10.72.0.0/24");
    expect(freeFabricPrefix("")).toBe("10.70.0.0/24");
  });

  it("needs a fabric only for netns and qemu hosts", () => {
    expect(usesFabric(config)).toBe(true);
    expect(usesFabric({ hosts: [{ kind: "ssh" }] })).toBe(false);
    expect(usesFabric({ hosts: [{ kind: "ssh" }, { kind: "qemu" }] })).toBe(true);
  });

  it("rejects an ssh host whose key does not exist, naming its field and how to make one", () => {
    const remote = validateClusterConfig({
      hosts: [
        { name: "n1", vms: [{ name: "a" }] },
        { name: "r1", kind: "ssh", address: "10.9.0.5", user: "vpc", key: "/keys/r1", vms: [{ name: "b" }] },
      ],
    });
    expect(() => checkSshKeys(remote, () => true)).not.toThrow();
    expect(() => checkSshKeys(remote, () => false)).toThrow(
      /hosts\[1\]\.key: \/keys\/r1 does not exist .*ssh-keygen -t ed25519 -N '' -f \/keys\/r1, then add \/keys\/r1\.pub to ~vpc\/\.ssh\/authorized_keys on 10\.9\.0\.5/,
    );
  });

  it("keeps one fixed run directory per config name", () => {
    expect(namedTestbedsRoot({})).toBe("/run/vpc-testbed");
    expect(namedTestbedsRoot({ VPC_TESTBED_DIR: "/tmp/x" })).toBe("/tmp/x");
    expect(namedTestbedDir("demo", "/run/vpc-testbed")).toBe("/run/vpc-testbed/demo");
  });
});
