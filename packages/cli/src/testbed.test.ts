import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EpochMetrics } from "@vpc/cluster";
import type { DoctorReport, RunResult, TestbedReport } from "@vpc/testbed";
import { afterEach, describe, expect, it } from "vitest";
import { commandStyle, doctorForConfig, parseTestbedArgs, runTestbedCli } from "./testbed.js";
import {
  formatCheckpoint,
  formatEpochList,
  formatRestore,
  formatRunResult,
  formatTestbedStatus,
  type TestbedCommandStyle,
} from "./testbed-format.js";

describe("parseTestbedArgs", () => {
  it("takes a command, --config and --json", () => {
    expect(parseTestbedArgs(["up"])).toEqual({ command: "up", config: undefined, json: false });
    expect(parseTestbedArgs(["status", "--config", "x.json", "--json"])).toEqual({
      command: "status",
      config: "x.json",
      json: true,
    });
  });

  it("builds the daemon request of run, checkpoint, kill, restore and exec", () => {
    expect(
      parseTestbedArgs(["run", "--kernel", "MG", "--class", "s", "--np", "2", "--checkpoint-every", "500"]),
    ).toMatchObject({
      command: "run",
      request: { method: "run", kernel: "mg", class: "S", np: 2, checkpointEveryMs: 500 },
    });
    expect(parseTestbedArgs(["run"])).toMatchObject({ request: { method: "run" } });
    expect(parseTestbedArgs(["checkpoint"])).toMatchObject({ request: { method: "checkpoint" } });
    expect(parseTestbedArgs(["kill", "--json"])).toMatchObject({ json: true, request: { method: "kill" } });
    expect(parseTestbedArgs(["restore", "--epoch", "3"])).toMatchObject({
      request: { method: "restore", epoch: 3 },
    });
    expect(parseTestbedArgs(["exec", "vm2", "--", "cat", "/proc/meminfo"])).toMatchObject({
      request: { method: "exec", vm: "vm2", command: "cat /proc/meminfo" },
    });
    expect(parseTestbedArgs(["daemon", "--run-dir", "/r/demo"])).toMatchObject({
      command: "daemon",
      runDir: "/r/demo",
    });
  });

  it("gives the help of a command", () => {
    expect(parseTestbedArgs(["--help"])).toMatchObject({
      help: expect.stringContaining("Usage: vpc testbed"),
    });
    for (const c of ["up", "status", "run", "checkpoint", "kill", "restore", "exec", "down"])
      expect(parseTestbedArgs([c, "-h"])).toMatchObject({
        help: expect.stringMatching(new RegExp(`^vpc testbed ${c}`)),
      });
  });

  it("rejects missing or unknown commands, misplaced options and bad values", () => {
    expect(() => parseTestbedArgs([])).toThrow(/missing command/);
    expect(() => parseTestbedArgs(["start"])).toThrow(/unknown command "start"/);
    expect(() => parseTestbedArgs(["up", "more"])).toThrow(/unexpected argument: more/);
    expect(() => parseTestbedArgs(["up", "--force"])).toThrow();
    expect(() => parseTestbedArgs(["status", "--epoch", "1"])).toThrow(/--epoch is not an option of status/);
    expect(() => parseTestbedArgs(["run", "--kernel", "lu"])).toThrow(/unknown NPB kernel "lu"/);
    expect(() => parseTestbedArgs(["run", "--np", "two"])).toThrow(/--np must be a non-negative integer/);
    expect(() => parseTestbedArgs(["restore", "--epoch", "-1"])).toThrow();
    expect(() => parseTestbedArgs(["exec", "vm1"])).toThrow(/exec needs VM -- COMMAND/);
    expect(() => parseTestbedArgs(["daemon"])).toThrow(/daemon needs --run-dir/);
  });
});

const key = "/run/vpc-testbed/demo/client_key.dropbear";
/** As `vpc testbed` prints when `vpc` is on the PATH; `cfg` as the user typed --config. */
const cli = (cfg?: string): TestbedCommandStyle => ({ kind: "cli", prefix: "vpc testbed", config: cfg });
const up: TestbedReport = {
  config: "demo",
  runDir: "/run/vpc-testbed/demo",
  state: "up",
  bridge: "vpcbab12",
  clientKey: "/run/vpc-testbed/demo/client_key.dropbear",
  hosts: [
    {
      name: "h1",
      kind: "netns",
      netns: "vpc-ab12-h1",
      ip: "10.77.0.2",
      ssh: "root@10.77.0.2:22",
      key,
      problems: [],
    },
    {
      name: "h2",
      kind: "netns",
      netns: "vpc-ab12-h2",
      ip: "10.77.0.3",
      ssh: "root@10.77.0.3:22",
      key,
      problems: [],
    },
  ],
  vms: [
    { name: "vm1", host: "h1", dataIp: "192.168.77.11/24", state: "running" },
    { name: "vm3", host: "h2", dataIp: "192.168.77.13/24", state: "running" },
  ],
  daemon: { pid: 4242, phase: "ready", log: "/run/vpc-testbed/demo/daemon.log" },
  committedEpochs: [0, 1, 2],
  problems: [],
};

describe("formatTestbedStatus", () => {
  it("prints aligned host and VM tables, the daemon, epochs and the next commands", () => {
    const text = formatTestbedStatus(up, cli());
    const lines = text.split("\n");
    const header = lines.find((l) => l.startsWith("HOST"))!;
    const h2 = lines.find((l) => l.startsWith("h2 "))!;
    expect(h2.indexOf("root@10.77.0.3:22")).toBe(header.indexOf("SSH"));
    expect(h2).toMatch(/^h2\s+netns\s+vpc-ab12-h2\s/);
    expect(text).toMatch(/^vm3\s+h2\s+192\.168\.77\.13\/24\s+running$/m);
    expect(text).toContain("daemon: pid 4242, ready   log /run/vpc-testbed/demo/daemon.log");
    expect(text).toContain("committed epochs: 0–2 (3)");
    expect(text).toMatch(/^ {2}vpc testbed run --checkpoint-every 1000 +# /m);
    expect(text).toContain("vpc testbed exec vm1 -- uname -a");
    expect(text).toContain("dbclient -y -i /run/vpc-testbed/demo/client_key.dropbear root@10.77.0.2");
    expect(text).not.toContain("problems:");
    // The comments of the next commands line up.
    const hashes = lines.filter((l) => l.startsWith("  ") && l.includes(" # ")).map((l) => l.indexOf(" # "));
    expect(new Set(hashes).size).toBe(1);
    expect(formatTestbedStatus(up, cli("c.json"))).toContain("vpc testbed kill --config c.json");
  });

  it("lists what is wrong: broken hosts get the up fix, killed VMs the restore", () => {
    const broken: TestbedReport = {
      ...up,
      state: "broken",
      hosts: [{ ...up.hosts[0]!, problems: ["namespace vpc-ab12-h1 is missing"] }],
      problems: ["h1: namespace vpc-ab12-h1 is missing"],
    };
    const text = formatTestbedStatus(broken, cli("c.json"));
    expect(text).toContain("testbed demo: broken");
    expect(text).toContain("  - h1: namespace vpc-ab12-h1 is missing");
    expect(text).toContain("fix: vpc testbed up --config c.json");
    const killed = formatTestbedStatus(
      {
        ...up,
        vms: up.vms.map((v) => ({ ...v, state: "killed" })),
        problems: ["vm1: killed — vpc testbed restore brings it back"],
      },
      cli(),
    );
    expect(killed).toMatch(/^vm1\s+h1\s+\S+\s+killed$/m);
    expect(killed).not.toContain("fix:");
    expect(killed).toMatch(/^ {2}vpc testbed restore +# bring the killed VMs back$/m);
  });

  it("tells to wait for a testbed that is starting", () => {
    const text = formatTestbedStatus(
      { ...up, state: "starting", problems: ["the testbed daemon is starting (the hosts and VMs come up)"] },
      cli(),
    );
    expect(text).toContain("testbed demo: starting");
    expect(text).toContain("wait: vpc testbed up   # follows its log");
    expect(text).not.toContain("fix:");
    expect(text).not.toContain("next:");
  });

  it("says down when there is no state", () => {
    expect(formatTestbedStatus({ ...up, state: "down", hosts: [] }, cli())).toBe(
      "testbed demo: down (no state in /run/vpc-testbed/demo)",
    );
  });
});

describe("hosts of every kind and the command style", () => {
  it("an ssh host shows kind, user@address:port, no namespace, no bridge, and an ssh login", () => {
    const r: TestbedReport = {
      ...up,
      bridge: undefined,
      hosts: [
        {
          name: "far",
          kind: "ssh",
          netns: "",
          ip: "203.0.113.7",
          ssh: "vpc@203.0.113.7:2222",
          key: "/home/me/.ssh/id_vpc",
          problems: [],
        },
      ],
    };
    const text = formatTestbedStatus(r, cli());
    expect(text).toContain("bridge none (ssh hosts only)");
    expect(text).toMatch(/^far\s+ssh\s+-\s+vpc@203\.0\.113\.7:2222\s+ok$/m);
    expect(text).toMatch(
      /^ {2}ssh -i \/home\/me\/\.ssh\/id_vpc -p 2222 vpc@203\.0\.113\.7 +# log in to ssh host far$/m,
    );
    expect(text).not.toContain("ip netns exec");
    expect(text).not.toContain("root@");
  });

  it("make testbed up with nested.json (qemu hosts) prints make commands with CONFIG and ARGS", () => {
    const nested: TestbedReport = {
      ...up,
      config: "nested",
      hosts: ["q1", "q2"].map((name, i) => ({
        name,
        kind: "qemu" as const,
        netns: "",
        ip: `10.78.0.${i + 2}`,
        ssh: `root@10.78.0.${i + 2}:22`,
        key,
        problems: [],
      })),
      vms: [
        { name: "nvm1", host: "q1", dataIp: "192.168.78.11/24", state: "running" },
        { name: "nvm2", host: "q2", dataIp: "192.168.78.12/24", state: "running" },
      ],
    };
    const text = formatTestbedStatus(nested, { kind: "make", config: "testbed/nested.json" });
    expect(text).toMatch(/^q1\s+qemu\s+-\s+root@10\.78\.0\.2:22\s+ok$/m);
    expect(text).toContain("  make testbed run CONFIG=testbed/nested.json ");
    expect(text).toContain('  make testbed run CONFIG=testbed/nested.json ARGS="--checkpoint-every 1000" ');
    expect(text).toContain('  make testbed exec CONFIG=testbed/nested.json ARGS="nvm1 -- uname -a" ');
    expect(text).toMatch(
      /^ {2}dbclient -y -i \S+client_key\.dropbear root@10\.78\.0\.2 +# log in to qemu host q1$/m,
    );
    expect(text).not.toContain("ip netns exec");
    expect(text).not.toContain("vpc testbed");
    expect(text).toMatch(/^ {2}make testbed down CONFIG=testbed\/nested\.json$/m);
    // The default config under make: no CONFIG=.
    expect(formatTestbedStatus(up, { kind: "make", config: undefined })).toMatch(
      /^ {2}make testbed kill +# /m,
    );
  });

  it("up of ssh hosts only is not stopped by a missing bridge, tun or netns; netns hosts are", () => {
    const check = (id: string, status: "ok" | "missing") => ({
      id,
      title: id,
      required: true,
      status,
      detail: status === "ok" ? "works" : "does not work",
    });
    const report: DoctorReport = {
      ok: false,
      checks: [
        check("bridge", "missing"),
        check("tun", "missing"),
        check("netns", "missing"),
        check("node", "ok"),
      ],
    };
    const ssh = doctorForConfig(report, ["ssh"]);
    expect(ssh.ok).toBe(true);
    expect(ssh.checks[0]).toMatchObject({
      required: false,
      status: "warn",
      detail: "does not work (not needed: no netns or qemu host)",
    });
    expect(doctorForConfig(report, ["netns"]).ok).toBe(false);
    expect(doctorForConfig(report, ["netns"]).checks.find((c) => c.id === "tun")).toMatchObject({
      required: false,
    });
    expect(doctorForConfig({ ok: false, checks: [check("node", "missing")] }, ["ssh"]).ok).toBe(false);
  });

  it("the CLI style puts --config before exec's command", () => {
    const text = formatTestbedStatus(up, cli("testbed/ci.json"));
    expect(text).toContain("vpc testbed exec --config testbed/ci.json vm1 -- uname -a");
  });

  it("commandStyle: make under make, else vpc on the PATH or this bin by its path", () => {
    expect(commandStyle("/repo/testbed/nested.json", { MAKELEVEL: "1" }, "/repo")).toEqual({
      kind: "make",
      config: "testbed/nested.json",
    });
    expect(commandStyle("/etc/vpc/c.json", {}, "/repo").config).toBe("/etc/vpc/c.json");
    const plain = commandStyle(undefined, { PATH: "/nonexistent" }, "/");
    expect(plain.kind).toBe("cli");
    expect(plain.kind === "cli" && plain.prefix).toMatch(/^node \S+bin\.js testbed$/);
  });

  it("--help explains the workflow with an example, for the group and every command", () => {
    const group = parseTestbedArgs(["--help"]) as { help: string };
    expect(group.help).toContain("up → run → checkpoint → kill → restore → down");
    expect(group.help).toContain("vpc testbed run --checkpoint-every 1000");
    for (const c of ["up", "status", "run", "checkpoint", "kill", "restore", "exec", "down"]) {
      const h = (parseTestbedArgs([c, "--help"]) as { help: string }).help;
      expect(h).toMatch(new RegExp(`^vpc testbed ${c}`));
      expect(h).toContain("up → run → checkpoint → kill → restore → down");
      expect(h).toContain("vpc testbed down ");
    }
  });
});

describe("result formatting", () => {
  const m: EpochMetrics = {
    epoch: 4,
    vcDowntimeMs: 80,
    soloDowntimeMs: { vm1: 30, vm2: 50 },
    pauseMs: { vm1: 20, vm2: 40 },
    pauseOffsetMs: {},
    steps: {},
    heldFrames: 1,
    loggedFrames: 2,
    channelLogFrames: 2,
    droppedFrames: 0,
    checkpointBytes: 5_000_000,
    commitMs: 200,
    full: false,
  };

  it("lists epochs compactly", () => {
    expect(formatEpochList([])).toBe("none");
    expect(formatEpochList([7])).toBe("7 (1)");
    expect(formatEpochList([0, 2, 3])).toBe("0, 2, 3 (3)");
    expect(formatEpochList([0, 2, 3, 4, 5, 6, 9])).toBe("0, 2, 3, …, 9 (7)");
  });

  it("prints a checkpoint with the ARCHITECTURE names", () => {
    const t = formatCheckpoint(m);
    expect(t).toContain("epoch             4 (incremental), committed");
    expect(t).toContain("VC downtime       80.0 ms");
    expect(t).toContain("pause time        vm1 20.0 ms, vm2 40.0 ms");
    expect(t).toContain("solo VM downtime  vm1 30.0 ms, vm2 50.0 ms");
    expect(t).toContain("checkpoint size   5.0 MB");
  });

  it("prints a restore", () => {
    const t = formatRestore({
      epoch: 4,
      totalMs: 7500,
      killedFirst: true,
      vms: [{ vmId: "vm1", ms: 3160, replayed: 2 }],
      skipped: [],
    });
    expect(t).toContain("restored epoch    4 (the running VMs were killed first)");
    expect(t).toContain("restore time      7.50 s");
    expect(t).toMatch(/vm1\s+3\.16 s, 2 channel-log frames replayed/);
  });

  it("prints a run: verification, result, checkpoints, and the output only when not verified", () => {
    const r: RunResult = {
      workload: "CG.S -n 4",
      verified: true,
      verificationLines: ["Verification    =               SUCCESSFUL"],
      results: [
        {
          kernel: "cg",
          class: "S",
          size: "1400",
          dimensions: [1400],
          iterations: 15,
          seconds: 5.11,
          mopsTotal: 13.05,
          processes: 4,
          verified: true,
        },
      ],
      finalizeHang: true,
      wallMs: 39_700,
      epochs: [{ ...m, epoch: 0, full: true, vcDowntimeMs: 900 }, m],
      abortedEpochs: 1,
      restoredFrom: [{ epoch: 12, computing: true }],
      output: "the output",
    };
    const t = formatRunResult(r);
    expect(t).toContain("  Verification    =               SUCCESSFUL");
    expect(t).toContain("CG.S: 5.11 s, 13.05 Mop/s total, 4 processes, verified");
    expect(t).toMatch(/result +VERIFIED \(CG\.S -n 4, 1 result block\); mpiexec hung in MPI_Finalize/);
    expect(t).toContain(
      "checkpoints       2 committed, 1 aborted; VC downtime median 80.0 ms (incremental), max 900.0 ms",
    );
    expect(t).toContain("restored during the run from epoch 12 (the kernel was computing in it)");
    expect(t).not.toContain("the output");
    expect(formatRunResult({ ...r, verified: false })).toContain("workload output:\nthe output");
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
      /^vpc testbed up: bad config \S*c\.json \[CLUSTER_CONFIG\]\n {2}hostz: unknown field\n/,
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
    expect(err.join("")).toMatch(/need 131072 MiB/);
  });

  it("the daemon's commands say so when the testbed is down", async () => {
    const path = tmpConfig({ name: "u5", hosts: [{ name: "h1", vms: [{ name: "a" }] }] });
    for (const args of [["run"], ["checkpoint"], ["kill"], ["restore"], ["exec", "a"]]) {
      const { err, io } = capture();
      const tail = args[0] === "exec" ? ["--", "true"] : [];
      expect(await runTestbedCli([...args, "--config", path, ...tail], io)).toBe(1);
      expect(err.join("")).toContain("[TESTBED_STATE]: testbed u5 is down (vpc testbed up brings it up)");
    }
    const { out, io } = capture();
    expect(await runTestbedCli(["status", "--config", path], io)).toBe(0);
    expect(out.join("")).toMatch(/^testbed u5: down/);
  });

  it("down with nothing up succeeds", async () => {
    const path = tmpConfig({ name: "u4", hosts: [{ name: "h1", vms: [{ name: "a" }] }] });
    const { out, io } = capture();
    expect(await runTestbedCli(["down", "--config", path], io)).toBe(0);
    expect(out.join("")).toBe("testbed u4: down (nothing was up)\n");
  });
});
