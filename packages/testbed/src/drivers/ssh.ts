/**
 * The `ssh` kind inside `testbedUp`/`testbedDown`/status: every ssh host is probed before the
 * testbed creates anything (a missing key, an unreachable host, a changed host key or a missing
 * prerequisite stops `up` with nothing to undo); then each is recorded in the state before its
 * directory is made, so `down` after a crash removes it too.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { defaultGuestImageDir, defaultLogger } from "@vpc/controller";
import { HostSetupError } from "../errors.js";
import {
  installSshHost,
  probeSshHost,
  type SshHostProbe,
  sshHostDown,
  sshHostLeftovers,
  sshHostProblems,
} from "../ssh-host-remote.js";
import type { TestbedHost, TestbedHostSpec, TestbedState, TestbedUpOptions } from "../state.js";
import type { HostDriver, Removal } from "./driver.js";

/**
 * Probes every ssh host in parallel; on any failure the others' connections are closed and
 * one error names every host's problem.
 */
async function probeSshTestbedHosts(
  ssh: readonly TestbedHostSpec[],
  o: TestbedUpOptions,
): Promise<Map<string, SshHostProbe>> {
  const results = await Promise.allSettled(
    // async: a bad spec rejects its own entry instead of throwing past the other probes.
    ssh.map(async (s) => {
      if (s.ssh === undefined)
        throw new HostSetupError("host-kind", `host ${s.name}: ssh host without its address and key`, {
          hostId: s.name,
        });
      return probeSshHost(
        { name: s.name, ssh: s.ssh, guestMiB: s.guestMiB ?? 0 },
        {
          imageDir: o.guestImage ?? defaultGuestImageDir(),
          ...(o.forceAgentCopy ? { forceCopy: true } : {}),
        },
      );
    }),
  );
  const probes = new Map<string, SshHostProbe>();
  results.forEach((r, i) => {
    if (r.status === "fulfilled") probes.set(ssh[i]!.name, r.value);
  });
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed.length === 1) {
    for (const p of probes.values()) p.conn.end();
    throw failed[0]!.reason;
  }
  if (failed.length > 1) {
    for (const p of probes.values()) p.conn.end();
    throw new HostSetupError("ssh-hosts", failed.map((f) => (f.reason as Error).message).join("\n"), {
      cause: failed[0]!.reason,
    });
  }
  // Not fatal (e.g. an agentModule that is not there, so the agent is copied instead).
  for (const [name, p] of probes)
    for (const c of p.checks)
      if (c.status === "warn")
        (o.logger ?? defaultLogger()).log("warn", "testbed.ssh-host", {
          hostId: name,
          check: c.id,
          detail: c.detail,
          ...(c.fix ? { fix: c.fix } : {}),
        });
  return probes;
}

/** Records the host, then makes its directories and reuses or copies the agent. */
async function startSshTestbedHost(i: {
  readonly state: TestbedState;
  readonly spec: TestbedHostSpec;
  readonly probe: SshHostProbe;
  readonly save: () => Promise<void>;
}): Promise<TestbedHost> {
  const { state, spec, probe } = i;
  const ssh = spec.ssh!;
  const host: TestbedHost = {
    name: spec.name,
    kind: "ssh",
    ip: ssh.address,
    sshPort: ssh.port,
    user: ssh.user,
    keyPath: ssh.key,
    agentModule: probe.source.module,
    netns: "",
    veth: "",
    dir: ssh.dir,
    localDir: join(state.runDir, spec.name),
    shmDir: `/dev/shm/vpc-tb-${state.id}-${spec.name}`,
  };
  state.hosts.push(host);
  await mkdir(host.localDir!, { recursive: true, mode: 0o700 });
  host.ssh = await installSshHost(
    probe,
    { name: spec.name, ssh, guestMiB: spec.guestMiB ?? 0 },
    host.shmDir,
    async (s) => {
      host.ssh = s;
      await i.save();
    },
  );
  await i.save();
  return host;
}

export const sshDriver: HostDriver = {
  kind: "ssh",
  // Reached over this machine's own network: a testbed of only ssh hosts has no bridge.
  onBridge: false,

  async probe(specs, options) {
    const probes = await probeSshTestbedHosts(specs, options);
    return {
      async start(ctx) {
        for (const spec of specs)
          await startSshTestbedHost({
            state: ctx.state,
            spec,
            probe: probes.get(spec.name)!,
            save: ctx.save,
          });
      },
      release() {
        for (const p of probes.values()) p.conn.end();
      },
    };
  },

  problems(_state, h) {
    if (h.ssh === undefined) return Promise.resolve(["up did not finish on this host"]);
    return sshHostProblems(h, h.agentModule);
  },

  leftovers(_state, h) {
    if (h.ssh === undefined) return Promise.resolve([]);
    return sshHostLeftovers(h);
  },

  async down(_state, h, r: Removal) {
    // Nothing was made on the host before its state was recorded.
    if (h.ssh === undefined) return;
    await r.step(`ssh host ${h.name}`, async () => {
      for (const what of await sshHostDown(h)) r.removed(what);
    });
  },
};
