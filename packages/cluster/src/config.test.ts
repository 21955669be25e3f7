import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseEngineSpec } from "@vpc/controller";
import { describe, expect, it } from "vitest";
import { clusterVms, loadClusterConfig, validateClusterConfig } from "./config.js";
import { ClusterConfigError } from "./errors.js";

const base = {
  hosts: [
    { name: "h1", vms: [{ name: "vm1" }, { name: "vm2" }] },
    { name: "h2", vms: [{ name: "vm3" }, { name: "vm4", memMiB: 512 }] },
  ],
};

function fieldOf(input: unknown): string {
  try {
    validateClusterConfig(input);
  } catch (e) {
    expect(ClusterConfigError.isInstance(e)).toBe(true);
    return (e as ClusterConfigError).field;
  }
  throw new Error("accepted");
}

describe("host kinds", () => {
  const ssh = { name: "r1", kind: "ssh", address: "10.9.0.5", key: "/keys/id", vms: [{ name: "rvm" }] };

  it("defaults to netns and gives fabric addresses only to emulated hosts", () => {
    const c = validateClusterConfig({
      hosts: [
        ssh,
        { name: "q1", kind: "qemu", vms: [{ name: "qvm" }] },
        { name: "n1", vms: [{ name: "nvm" }] },
      ],
    });
    expect(c.hosts.map((h) => [h.name, h.kind, h.fabricIp])).toEqual([
      ["r1", "ssh", "10.9.0.5"],
      ["q1", "qemu", "10.77.0.2"],
      ["n1", "netns", "10.77.0.3"],
    ]);
    expect(c.hosts[0]!.ssh).toEqual({
      address: "10.9.0.5",
      port: 22,
      user: "root",
      key: "/keys/id",
      dir: "/var/tmp/vpc-vc-r1",
      agentModule: undefined,
      hostKey: undefined,
    });
    expect(c.hosts[1]!.qemu).toEqual({ memMiB: 1536, cpus: 1 });
  });

  it("sizes a qemu host for its guests and rejects one too small", () => {
    const big = validateClusterConfig({
      vm: { memMiB: 1024 },
      hosts: [{ name: "q1", kind: "qemu", vms: [{ name: "a" }, { name: "b" }] }],
    });
    expect(big.hosts[0]!.qemu!.memMiB).toBe(2731); // 2048 MiB of guests in 3/4 of the L1's RAM
    expect(
      fieldOf({ hosts: [{ name: "q1", kind: "qemu", memMiB: 600, vms: [{ name: "a", memMiB: 512 }] }] }),
    ).toBe("hosts[0].memMiB");
  });

  it("rejects unknown kinds, fields of another kind, missing keys and clashing addresses", () => {
    expect(fieldOf({ hosts: [{ name: "h", kind: "xen", vms: [{ name: "v" }] }] })).toBe("hosts[0].kind");
    expect(fieldOf({ hosts: [{ name: "h", address: "1.2.3.4", vms: [{ name: "v" }] }] })).toBe(
      "hosts[0].address",
    );
    expect(fieldOf({ hosts: [{ ...ssh, key: undefined }] })).toBe("hosts[0].key");
    expect(fieldOf({ hosts: [{ ...ssh, key: "relative/key" }] })).toBe("hosts[0].key");
    expect(fieldOf({ hosts: [{ ...ssh, address: "bad host!" }] })).toBe("hosts[0].address");
    expect(fieldOf({ hosts: [{ ...ssh, hostKey: "SHA256:short" }] })).toBe("hosts[0].hostKey");
    expect(fieldOf({ hosts: [{ ...ssh, hostKey: "MD5:aa:bb" }] })).toBe("hosts[0].hostKey");
    expect(
      fieldOf({ hosts: [{ name: "n1", hostKey: `SHA256:${"A".repeat(43)}`, vms: [{ name: "v" }] }] }),
    ).toBe("hosts[0].hostKey");
    const pinned = validateClusterConfig({ hosts: [{ ...ssh, hostKey: `SHA256:${"x/+9".repeat(10)}abc` }] });
    expect(pinned.hosts[0]!.ssh!.hostKey).toBe(`SHA256:${"x/+9".repeat(10)}abc`);
    expect(fieldOf({ hosts: [{ ...ssh, address: "10.77.0.1" }] })).toBe("hosts[0].address");
    expect(
      fieldOf({
        hosts: [
          { name: "n1", vms: [{ name: "v" }] },
          { ...ssh, address: "10.77.0.2" },
        ],
      }),
    ).toBe("hosts[1].address");
    expect(fieldOf({ hosts: [{ name: "h", bogus: 1, vms: [{ name: "v" }] }] })).toBe("hosts[0].bogus");
  });
});

describe("cluster config", () => {
  it("fills defaults and derives fabric and data addresses", () => {
    const c = validateClusterConfig(base);
    expect(c.fabric).toEqual({ prefix: "10.77.0.0/24", bridgeIp: "10.77.0.1", prefixLength: 24 });
    expect(c.hosts.map((h) => h.fabricIp)).toEqual(["10.77.0.2", "10.77.0.3"]);
    expect(clusterVms(c).map((v) => [v.name, v.hostId, v.dataIp, v.memMiB])).toEqual([
      ["vm1", "h1", "192.168.77.11/24", 256],
      ["vm2", "h1", "192.168.77.12/24", 256],
      ["vm3", "h2", "192.168.77.13/24", 256],
      ["vm4", "h2", "192.168.77.14/24", 512],
    ]);
    expect(c.engine).toEqual(parseEngineSpec("vpc"));
    expect(c.workload).toEqual({ kernel: "cg", class: "S", np: 4, repeat: 1 });
    expect(c.intervalMs).toBe(1000);
  });

  it("combines engine and predictor strategy", () => {
    // The two fields give the spec the one-string grammar gives for `vpc(STRATEGY):PARAMS`.
    expect(validateClusterConfig({ ...base, engine: "vpc", strategy: "last" }).engine).toEqual(
      parseEngineSpec("vpc(last)"),
    );
    expect(validateClusterConfig({ ...base, engine: "vpc:window=10", strategy: "last" }).engine).toEqual(
      parseEngineSpec("vpc(last):window=10"),
    );
    expect(validateClusterConfig({ ...base, engine: "vpc:window=10" }).engine).toEqual(
      parseEngineSpec("vpc:window=10"),
    );
  });

  it("takes an already parsed engine instead of the engine and strategy fields", () => {
    const spec = parseEngineSpec("precopy:rounds=3");
    expect(validateClusterConfig(base, spec).engine).toBe(spec);
    expect(() => validateClusterConfig({ ...base, engine: "cow" }, spec)).toThrow(/engine/);
    expect(() => validateClusterConfig(base, parseEngineSpec("qemu-stop"))).toThrow(/agent engine/);
  });

  it("names the first bad field", () => {
    expect(fieldOf(null)).toBe("$");
    expect(fieldOf({ ...base, colour: 1 })).toBe("colour");
    expect(fieldOf({ hosts: [] })).toBe("hosts");
    expect(fieldOf({ ...base, fabricPrefix: "8.8.8.0/24" })).toBe("fabricPrefix");
    expect(fieldOf({ ...base, fabricPrefix: "10.77.0.1/24" })).toBe("fabricPrefix");
    expect(fieldOf({ ...base, engine: "turbo" })).toBe("engine");
    expect(fieldOf({ ...base, engine: "qemu-stop" })).toBe("engine");
    expect(fieldOf({ ...base, engine: "cow", strategy: "last" })).toBe("strategy");
    expect(fieldOf({ ...base, engine: "vpc", strategy: "last\nx" })).toBe("strategy");
    expect(fieldOf({ ...base, intervalMs: 5 })).toBe("intervalMs");
    expect(fieldOf({ hosts: [{ name: "H 1", vms: [{ name: "a" }] }] })).toBe("hosts[0].name");
    expect(
      fieldOf({
        hosts: [
          { name: "h1", vms: [{ name: "a" }] },
          { name: "h1", vms: [{ name: "b" }] },
        ],
      }),
    ).toBe("hosts[1].name");
    expect(fieldOf({ hosts: [{ name: "h1", vms: [{ name: "a" }, { name: "a" }] }] })).toBe(
      "hosts[0].vms[1].name",
    );
    expect(fieldOf({ hosts: [{ name: "h1", vms: [{ name: "a", memMiB: 3 }] }] })).toBe(
      "hosts[0].vms[0].memMiB",
    );
    expect(fieldOf({ ...base, workload: { kernel: "lu" } })).toBe("workload.kernel");
    expect(fieldOf({ ...base, workload: { class: "Z" } })).toBe("workload.class");
    expect(fieldOf({ ...base, fsync: "yes" })).toBe("fsync");
  });

  it("loads testbed/default.json and reports unreadable or non-JSON files", async () => {
    const c = await loadClusterConfig(join(import.meta.dirname, "../../../testbed/default.json"));
    expect(c.hosts.length).toBe(2);
    expect(clusterVms(c).length).toBe(4);
    const dir = await mkdtemp(join(tmpdir(), "vpc-cfg-"));
    try {
      await writeFile(join(dir, "bad.json"), "{");
      await expect(loadClusterConfig(join(dir, "bad.json"))).rejects.toMatchObject({
        code: "CLUSTER_CONFIG",
        field: "$",
      });
      await expect(loadClusterConfig(join(dir, "missing.json"))).rejects.toMatchObject({ field: "$" });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
