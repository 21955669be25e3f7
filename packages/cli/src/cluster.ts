/** `vpc cluster demo|up|down`: the virtual-cluster scenario on emulated netns hosts. */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ClusterError, loadClusterConfig } from "@vpc/cluster";
import { ControllerError, reapNow } from "@vpc/controller";
import {
  type ClusterDemoResult,
  runClusterDemo,
  TestbedError,
  testbedDown,
  testbedHostSpecs,
  testbedUp,
} from "@vpc/testbed";
import { usageErrorOf } from "./cli-common.js";

interface Io {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

const CLUSTER_USAGE = `Usage: vpc cluster <demo|up|down> [options]

  demo [--config FILE] [--json] [--keep]
      two netns hosts, a VM cluster, an NPB kernel across it with global checkpoints every
      interval; kills the whole cluster mid-run, restores it from the last committed epoch,
      prints the verification line and a metrics summary, tears everything down
  up [--config FILE]      create the netns hosts of the config; prints the run directory
  down RUN_DIR            remove everything "up" created (namespaces, links, processes, shm)

Options:
  --config FILE   cluster description (default: testbed/demo.json of the repository for demo,
                  testbed/default.json for up)
  --json          print the result as JSON
  --keep          keep the run directory (stores, manifest, agent logs) after tear-down`;

/** testbed/`name` of the repository this runs in (searched upwards from the cwd). */
function repositoryConfig(name: string): string {
  let dir = process.cwd();
  for (let i = 0; i < 8; i++) {
    const p = join(dir, "testbed", name);
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  return resolve("testbed", name);
}

/** testbed/default.json: the long-lived testbed (two hosts, four VMs). */
export function defaultConfig(): string {
  return repositoryConfig("default.json");
}

/**
 * testbed/demo.json: the main job's cluster, one VM per host. Four TCG VMs running MPI need more
 * than two cores: each waiting rank keeps its vCPU thread and QEMU's main loop busy (docs/cluster.md).
 */
function demoConfig(): string {
  return repositoryConfig("demo.json");
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
};

function formatClusterSummary(r: ClusterDemoResult): string {
  const incr = r.epochs.filter((e) => !e.full);
  const solo = incr.flatMap((e) => Object.values(e.soloDowntimeMs));
  const lines = [
    ...r.verificationLines.map((l) => `  ${l}`),
    `result            ${r.verified ? "VERIFIED" : "NOT VERIFIED"} (${r.runs} runs)${r.finalizeHang ? "; mpiexec hung in MPI_Finalize after the result (MPICH 4.0.2 issue, docs/cluster.md)" : ""}`,
    `epochs            ${r.epochs.length} committed, ${r.abortedEpochs} aborted; killed after epoch ${r.killedAfterEpoch}, restored epoch ${r.restoredEpoch}`,
    `restore           ${(r.restoreMs / 1000).toFixed(2)} s for the whole cluster, ${r.replayedFrames} channel-log frames replayed`,
    `VC downtime       median ${median(incr.map((e) => e.vcDowntimeMs)).toFixed(1)} ms (incremental epochs), max ${Math.max(...r.epochs.map((e) => e.vcDowntimeMs)).toFixed(1)} ms`,
    `solo downtime     median ${median(solo).toFixed(1)} ms, max ${Math.max(...solo).toFixed(1)} ms`,
    `frames            held ${r.epochs.reduce((a, e) => a + e.heldFrames, 0)}, logged ${r.epochs.reduce((a, e) => a + e.loggedFrames, 0)}`,
    `wall time         ${(r.wallMs / 1000).toFixed(1)} s`,
  ];
  return lines.join("\n");
}

export async function runClusterCli(args: readonly string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "-h" || sub === "--help") {
    (sub === undefined ? io.stderr : io.stdout)(`${CLUSTER_USAGE}\n`);
    return sub === undefined ? 2 : 0;
  }
  let values: {
    config?: string | undefined;
    json?: boolean | undefined;
    keep?: boolean | undefined;
    help?: boolean | undefined;
  };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...rest],
      allowPositionals: true,
      options: {
        config: { type: "string" },
        json: { type: "boolean" },
        keep: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    io.stderr(`vpc cluster: ${usageErrorOf(e)}\n\n${CLUSTER_USAGE}\n`);
    return 2;
  }
  if (values.help) {
    io.stdout(`${CLUSTER_USAGE}\n`);
    return 0;
  }
  const onSignal = (): void => {
    reapNow();
    process.exit(130);
  };
  try {
    if (sub === "down") {
      if (positionals.length !== 1) throw new Error("down needs RUN_DIR");
      for (const r of await testbedDown(positionals[0]!)) io.stdout(`removed ${r}\n`);
      return 0;
    }
    const config = await loadClusterConfig(
      values.config ?? (sub === "demo" ? demoConfig() : defaultConfig()),
    );
    if (sub === "up") {
      // An L1 host's QEMU is this process's child and would die when `up` returns.
      const qemuHosts = config.hosts.filter((h) => h.kind === "qemu").map((h) => h.name);
      if (qemuHosts.length > 0)
        throw new Error(
          `qemu hosts (${qemuHosts.join(", ")}) live only as long as the process that boots them: ` +
            "use `vpc testbed up --config FILE`, whose daemon keeps them",
        );
      const st = await testbedUp({
        hosts: testbedHostSpecs(config),
        bridgeIp: config.fabric.bridgeIp,
        prefixLength: config.fabric.prefixLength,
      });
      io.stdout(
        `${values.json ? JSON.stringify(st) : `testbed up: ${st.hosts.map((h) => `${h.name} ${h.ip}`).join(", ")}\nrun dir: ${st.runDir}\n(vpc cluster down ${st.runDir})`}\n`,
      );
      return 0;
    }
    if (sub !== "demo") {
      io.stderr(`vpc cluster: unknown subcommand "${sub}"\n\n${CLUSTER_USAGE}\n`);
      return 2;
    }
    process.once("SIGINT", onSignal);
    const r = await runClusterDemo({
      config,
      keepRunDir: values.keep ?? false,
      ...(values.json ? {} : { onProgress: (l: string) => io.stdout(`${l}\n`) }),
    });
    io.stdout(values.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatClusterSummary(r)}\n`);
    return r.verified ? 0 : 1;
  } catch (e) {
    const code =
      ClusterError.isInstance(e) || ControllerError.isInstance(e) || TestbedError.isInstance(e)
        ? ` [${e.code}]`
        : "";
    io.stderr(`vpc cluster ${sub}: failed${code}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  } finally {
    process.removeListener("SIGINT", onSignal);
  }
}
