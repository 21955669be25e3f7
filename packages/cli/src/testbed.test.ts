import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DoctorReport, TestbedSessionStatus } from "@vpc/controller";
import { afterEach, describe, expect, it } from "vitest";
import { formatTestbedStatus, parseTestbedArgs, runTestbedCli } from "./testbed.js";

describe("parseTestbedArgs", () => {
  it("takes a subcommand, --config and --json", () => {
    expect(parseTestbedArgs(["up"])).toEqual({ command: "up", config: undefined, json: false });
    expect(parseTestbedArgs(["status", "--config", "x.json", "--json"])).toEqual({
      command: "status",
      config: "x.json",
      json: true,
    });
    expect(parseTestbedArgs(["down", "-h"])).toBeNull();
  });

  it("rejects a missing or unknown subcommand, extra arguments and unknown options", () => {
    expect(() => parseTestbedArgs([])).toThrow(/missing subcommand/);
    expect(() => parseTestbedArgs(["start"])).toThrow(/unknown subcommand "start"/);
    expect(() => parseTestbedArgs(["up", "more"])).toThrow(/unexpected argument: more/);
    expect(() => parseTestbedArgs(["up", "--force"])).toThrow();
  });
});

const up: TestbedSessionStatus = {
  config: "demo",
  runDir: "/run/vpc-testbed/demo",
  state: "up",
  bridge: "vpcbab12",
  clientKey: "/run/vpc-testbed/demo/client_key.dropbear",
  hosts: [
    { name: "h1", netns: "vpc-ab12-h1", ip: "10.77.0.2", ssh: "root@10.77.0.2:22", problems: [] },
    { name: "h2", netns: "vpc-ab12-h2", ip: "10.77.0.3", ssh: "root@10.77.0.3:22", problems: [] },
  ],
  vms: [{ name: "vm1", host: "h1", dataIp: "192.168.77.11/24", state: "not booted" }],
  problems: [],
};

describe("formatTestbedStatus", () => {
  it("prints aligned host and VM tables and the next commands", () => {
    const text = formatTestbedStatus(up, "testbed/default.json");
    const lines = text.split("\n");
    const header = lines.find((l) => l.startsWith("HOST"))!;
    const h2 = lines.find((l) => l.startsWith("h2 "))!;
    expect(h2.indexOf("10.77.0.3")).toBe(header.indexOf("FABRIC IP"));
    expect(text).toMatch(/^vm1\s+h1\s+192\.168\.77\.11\/24\s+not booted$/m);
    expect(text).toContain("dbclient -y -i /run/vpc-testbed/demo/client_key.dropbear root@10.77.0.2");
    expect(text).toContain("vpc cluster demo --config testbed/default.json");
    expect(text).not.toContain("problems:");
  });

  it("lists what is wrong with a broken testbed", () => {
    const broken: TestbedSessionStatus = {
      ...up,
      state: "broken",
      hosts: [{ ...up.hosts[0]!, problems: ["namespace vpc-ab12-h1 is missing"] }],
      problems: ["h1: namespace vpc-ab12-h1 is missing"],
    };
    const text = formatTestbedStatus(broken, "c.json");
    expect(text).toContain("testbed demo: broken");
    expect(text).toContain("  - h1: namespace vpc-ab12-h1 is missing");
    expect(text).toContain("fix: vpc testbed up --config c.json");
  });

  it("says down when there is no state", () => {
    expect(formatTestbedStatus({ ...up, state: "down", hosts: [] }, "c.json")).toBe(
      "testbed demo: down (no state in /run/vpc-testbed/demo)",
    );
  });
});

describe("vpc testbed up (refusals before anything starts)", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    delete process.env.VPC_TESTBED_DIR;
  });
  const capture = (): {
    out: string[];
    err: string[];
    io: { stdout: (t: string) => void; stderr: (t: string) => void };
  } => {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, io: { stdout: (t) => out.push(t), stderr: (t) => err.push(t) } };
  };
  const okDoctor = async (): Promise<DoctorReport> => ({ ok: true, checks: [] });
  const tmpConfig = (body: unknown): string => {
    const dir = mkdtempSync(join(tmpdir(), "vpc-tb-unit-"));
    dirs.push(dir);
    process.env.VPC_TESTBED_DIR = join(dir, "run");
    const path = join(dir, "c.json");
    writeFileSync(path, JSON.stringify(body));
    return path;
  };

  it("stops with the doctor's advice when something required is missing", async () => {
    const path = tmpConfig({ name: "u1", hosts: [{ name: "h1", vms: [{ name: "a" }] }] });
    const { out, err, io } = capture();
    const code = await runTestbedCli(["up", "--config", path], io, {
      runDoctor: async () => ({
        ok: false,
        checks: [
          {
            id: "qemu",
            title: "QEMU",
            status: "missing",
            required: true,
            detail: "not found",
            fix: "apt-get install qemu-system-x86",
          },
        ],
      }),
    });
    expect(code).toBe(1);
    expect(err.join("")).toContain("apt-get install qemu-system-x86");
    expect(out.join("")).toBe("");
  });

  it("rejects a config with unknown fields, naming the file and the field", async () => {
    const path = tmpConfig({ name: "u2", hostz: [] });
    const { err, io } = capture();
    expect(await runTestbedCli(["up", "--config", path], io, { runDoctor: okDoctor })).toBe(1);
    expect(err.join("")).toMatch(
      /\[CLUSTER_CONFIG\] \(.*c\.json\): invalid cluster config: hostz: unknown field/,
    );
  });

  it("rejects more guest RAM than the machine has", async () => {
    const path = tmpConfig({
      name: "u3",
      hosts: [
        {
          name: "h1",
          vms: [
            { name: "a", memMiB: 65536 },
            { name: "b", memMiB: 65536 },
          ],
        },
      ],
    });
    const { err, io } = capture();
    expect(await runTestbedCli(["up", "--config", path], io, { runDoctor: okDoctor })).toBe(1);
    expect(err.join("")).toMatch(/need 131072 MiB of guest RAM/);
  });

  it("down with nothing up succeeds", async () => {
    const path = tmpConfig({ name: "u4", hosts: [{ name: "h1", vms: [{ name: "a" }] }] });
    const { out, io } = capture();
    expect(await runTestbedCli(["down", "--config", path], io)).toBe(0);
    expect(out.join("")).toBe("testbed u4: down (nothing was up)\n");
  });
});
