/** `vpc testbed up|status|down`: the long-lived netns testbed of a cluster config. */
import { relative } from "node:path";
import { parseArgs } from "node:util";
import {
  ClusterError,
  ControllerError,
  type DoctorReport,
  formatDoctorReport,
  loadClusterConfig,
  runDoctor,
  type TestbedSessionStatus,
  testbedSessionDir,
  testbedSessionDown,
  testbedSessionStatus,
  testbedSessionUp,
} from "@vpc/controller";
import type { CliIo } from "./cli.js";
import { defaultConfig } from "./cluster.js";

export const TESTBED_USAGE = `Usage: vpc testbed <up|status|down> [--config FILE] [--json]

  up       check the machine (vpc doctor), validate the config, create its netns hosts
           (namespace, veth on the fabric bridge, dropbear SSH); a second up prints the status
  status   check that every namespace, link and dropbear of the testbed is still there
  down     remove everything up made (processes by recorded PID, namespaces, links, /dev/shm)

The VMs of the config are not booted by up: a host agent stops its VMs when the controller's
SSH session ends, so they cannot outlive this command. "vpc cluster demo" boots them.

State: /run/vpc-testbed/<config name>/testbed.json ($VPC_TESTBED_DIR overrides /run/vpc-testbed).

Options:
  --config FILE   cluster description (default testbed/default.json of the repository)
  --json          print the status as JSON
  -h, --help      show this help

Exit status: 0 done / testbed healthy (down: nothing left), 1 failed or testbed broken, 2 usage error.`;

export type TestbedCommand = "up" | "status" | "down";

export interface TestbedArgs {
  readonly command: TestbedCommand;
  readonly config: string | undefined;
  readonly json: boolean;
}

export class TestbedUsageError extends Error {
  override readonly name = "TestbedUsageError";
}

/** Parses `up|status|down [--config FILE] [--json]`; `null` means help was asked for. */
export function parseTestbedArgs(args: readonly string[]): TestbedArgs | null {
  const { values, positionals } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: true,
    options: {
      config: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return null;
  const [command, extra] = positionals;
  if (command === undefined) throw new TestbedUsageError("missing subcommand (up, status or down)");
  if (command !== "up" && command !== "status" && command !== "down")
    throw new TestbedUsageError(`unknown subcommand "${command}"`);
  if (extra !== undefined) throw new TestbedUsageError(`unexpected argument: ${extra}`);
  return { command, config: values.config, json: values.json };
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: readonly string[]): string =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** The human status: hosts, VMs, problems and the commands to go on with. */
export function formatTestbedStatus(s: TestbedSessionStatus, configPath: string): string {
  if (s.state === "down") return `testbed ${s.config}: down (no state in ${s.runDir})`;
  const cfg = `--config ${configPath}`;
  const out = [`testbed ${s.config}: ${s.state}   run dir ${s.runDir}   bridge ${s.bridge ?? "?"}`, ""];
  out.push(
    ...table(
      ["HOST", "NAMESPACE", "FABRIC IP", "SSH", "STATE"],
      s.hosts.map((h) => [
        h.name,
        h.netns,
        h.ip,
        h.ssh,
        h.problems.length === 0 ? "ok" : h.problems.join("; "),
      ]),
    ),
    "",
    ...table(
      ["VM", "HOST", "DATA IP", "STATE"],
      s.vms.map((v) => [v.name, v.host, v.dataIp, v.state]),
    ),
  );
  if (s.problems.length > 0) {
    out.push("", "problems:", ...s.problems.map((p) => `  - ${p}`));
    out.push("", `fix: vpc testbed up ${cfg}   # removes what is left of it and makes it anew`);
    return out.join("\n");
  }
  const first = s.hosts[0];
  out.push("", "The VMs are booted by the command that runs them (they stop with its controller).", "next:");
  if (first !== undefined)
    out.push(
      `  dbclient -y -i ${s.clientKey} root@${first.ip}     # log in to host ${first.name}`,
      `  ip netns exec ${first.netns} sh                    # a shell in host ${first.name}'s namespace`,
    );
  out.push(
    `  vpc testbed down ${cfg} && vpc cluster demo ${cfg}`,
    "      # boot the VMs, run the NPB kernel with global checkpoints, kill, restore, verify",
    "      # (the demo makes its own hosts on the same fabric prefix, so this testbed must be down)",
    `  vpc testbed status ${cfg}`,
    `  vpc testbed down ${cfg}`,
  );
  return out.join("\n");
}

export interface TestbedDeps {
  readonly runDoctor: () => Promise<DoctorReport>;
}

export async function runTestbedCli(
  args: readonly string[],
  io: CliIo,
  deps: TestbedDeps = { runDoctor: () => runDoctor() },
): Promise<number> {
  let parsed: TestbedArgs | null;
  try {
    parsed = parseTestbedArgs(args);
  } catch (e) {
    io.stderr(`vpc testbed: ${(e as Error).message}\n\n${TESTBED_USAGE}\n`);
    return 2;
  }
  if (parsed === null) {
    io.stdout(`${TESTBED_USAGE}\n`);
    return 0;
  }
  const { command, json } = parsed;
  const configPath = parsed.config ?? defaultConfig();
  const shownPath = relative(process.cwd(), configPath) || configPath;
  const print = (s: TestbedSessionStatus, extra: Record<string, unknown> = {}): void =>
    io.stdout(
      json ? `${JSON.stringify({ ...s, ...extra }, null, 2)}\n` : `${formatTestbedStatus(s, shownPath)}\n`,
    );
  try {
    const config = await loadClusterConfig(configPath);
    const runDir = testbedSessionDir(config.name);
    if (command === "status") {
      const s = await testbedSessionStatus(config, runDir);
      print(s);
      return s.state === "broken" ? 1 : 0;
    }
    if (command === "down") {
      const { removed, left } = await testbedSessionDown(runDir);
      if (json) io.stdout(`${JSON.stringify({ removed, left }, null, 2)}\n`);
      else {
        for (const r of removed) io.stdout(`removed ${r}\n`);
        io.stdout(
          left.length > 0
            ? `still there: ${left.join(", ")}\n`
            : `testbed ${config.name}: down${removed.length === 0 ? " (nothing was up)" : ""}\n`,
        );
      }
      return left.length === 0 ? 0 : 1;
    }
    const report = await deps.runDoctor();
    if (!report.ok) {
      io.stderr(
        `${formatDoctorReport(report)}\n\nvpc testbed up: the machine is missing required pieces (above)\n`,
      );
      return 1;
    }
    if (!json) io.stdout(`doctor: ok; bringing up testbed ${config.name} in ${runDir}\n`);
    const r = await testbedSessionUp(config, runDir);
    if (!json) {
      for (const x of r.repaired) io.stdout(`removed (broken earlier testbed) ${x}\n`);
      if (!r.created) io.stdout("already up: nothing to do\n");
    }
    print(r.status, { created: r.created, repaired: r.repaired });
    return r.status.state === "up" ? 0 : 1;
  } catch (e) {
    const code = ClusterError.isInstance(e) || ControllerError.isInstance(e) ? ` [${e.code}]` : "";
    const where = ClusterError.isInstance(e) && e.code === "CLUSTER_CONFIG" ? ` (${configPath})` : "";
    io.stderr(
      `vpc testbed ${command}: failed${code}${where}: ${e instanceof Error ? e.message : String(e)}\n`,
    );
    return 1;
  }
}
