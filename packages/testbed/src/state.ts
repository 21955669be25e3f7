/**
 * The record of a testbed, `<runDir>/testbed.json`: every host and what was made for it, written
 * before it is made (writeFileDurable), so `testbedDown` removes exactly what `testbedUp` made, also
 * after a crash half-way.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { HostKind, QemuHostConfig, SshHostConfig } from "@vpc/cluster";
import { type Logger, writeFileDurable } from "@vpc/controller";
import { HostSetupError } from "./errors.js";
import type { SshHostState } from "./ssh-host-remote.js";

export const TESTBED_STATE_FORMAT = "vpc-testbed/1";
export const TESTBED_STATE_FILE = "testbed.json";

export interface TestbedHostSpec {
  readonly name: string;
  /** Fabric address without prefix (an `ssh` host's address). */
  readonly ip: string;
  /** Default "netns". */
  readonly kind?: HostKind;
  /** `qemu` hosts: the L1 VM's size. */
  readonly qemu?: QemuHostConfig;
  /** `ssh` hosts: how to reach the machine. */
  readonly ssh?: SshHostConfig;
  /** `ssh` hosts: RAM of their VMs (checked against the machine's free /dev/shm). */
  readonly guestMiB?: number;
}

export interface TestbedUpOptions {
  readonly hosts: readonly TestbedHostSpec[];
  readonly bridgeIp: string;
  readonly prefixLength: number;
  /** Default: a new directory /tmp/vpc-tb-<id>. */
  readonly runDir?: string;
  /** Milliseconds to wait for every dropbear to accept connections (default 10 000). */
  readonly readyTimeoutMs?: number;
  /** qemu hosts: limit for an L1 to boot and answer SSH (default QemuHost's, 180 000). */
  readonly qemuBootTimeoutMs?: number;
  /** qemu hosts: their QemuHost log lines; ssh hosts: their probes' warnings. */
  readonly logger?: Logger;
  /** ssh hosts: guest image to reuse or copy (default: this machine's `defaultGuestImageDir()`). */
  readonly guestImage?: string;
  /** ssh hosts: copy the agent even when the host has the same build (tests of the copy path). */
  readonly forceAgentCopy?: boolean;
}

export interface TestbedHost {
  readonly name: string;
  /** Absent in state files of older versions: "netns". */
  readonly kind?: HostKind;
  readonly ip: string;
  readonly sshPort: number;
  /** SSH user (default root). */
  readonly user?: string;
  /** Private key (OpenSSH format) for this host; default the testbed's `clientKey`. */
  readonly keyPath?: string;
  /** Path of @vpc/controller's dist/index.js on the host; default this machine's. */
  readonly agentModule?: string;
  readonly netns: string;
  /** veth end in the root namespace (its peer is `fab0` in the host's namespace). */
  readonly veth: string;
  /** The host's private directory as the host sees it (home, store, run dirs). */
  readonly dir: string;
  /** This machine's directory for the host (agent log); default `dir` (the same for netns hosts). */
  readonly localDir?: string;
  /** What the host sees as /dev/shm (qemu hosts: this machine's directory of the L1's RAM file). */
  readonly shmDir: string;
  dropbearPid?: number;
  /** qemu hosts: the L1's fabric tap (on the testbed bridge). */
  readonly tap?: string;
  /** qemu hosts: where QEMU writes its PID at start-up (recorded before it starts). */
  readonly qemuPidFile?: string;
  /** qemu hosts: the L1's QEMU, once it booted. */
  qemuPid?: number;
  /** ssh hosts: pinned host key, agent source, what `up` made (ssh-host-remote.ts). */
  ssh?: SshHostState;
}

export interface TestbedState {
  readonly format: typeof TESTBED_STATE_FORMAT;
  readonly id: string;
  readonly runDir: string;
  readonly bridge: string;
  readonly bridgeIp: string;
  readonly prefixLength: number;
  /** OpenSSH-format private key the controller logs in with. */
  readonly clientKey: string;
  readonly hosts: TestbedHost[];
  readonly createdAt: string;
  /** Set once every step of `up` finished. */
  ready: boolean;
}

export function saveTestbedState(state: TestbedState): Promise<void> {
  return writeFileDurable(join(state.runDir, TESTBED_STATE_FILE), `${JSON.stringify(state, null, 2)}\n`, {
    mode: 0o600,
  });
}

export async function readTestbedState(runDir: string): Promise<TestbedState> {
  const path = join(runDir, TESTBED_STATE_FILE);
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, "utf8"));
  } catch (cause) {
    throw new HostSetupError("read-state", `no readable ${path}`, { cause });
  }
  const s = parsed as TestbedState;
  if (s.format !== TESTBED_STATE_FORMAT)
    throw new HostSetupError("read-state", `${path}: not ${TESTBED_STATE_FORMAT}`);
  return s;
}
