/** Starting (or restoring) a VM with the dirty-log agent preloaded and attached to its RAM. */
import {
  type AgentDir,
  AgentError,
  agentLibraryPath,
  createAgentDir,
  DirtyLogClient,
  type TrackingMode,
} from "@vpc/dirty-log";
import { defaultLogger, type Logger } from "../logger.js";
import { type RestoredVm, type RestoreVmOptions, restoreVm } from "../restore.js";
import { Vm, type VmOptions } from "../vm.js";

export interface AgentVmOptions {
  /** Tracking mode (default "async", falling back to "sync" when the kernel lacks it). */
  readonly mode?: TrackingMode;
  /** Staging slots (default: one per guest page, so a pause never runs out; the file is sparse). */
  readonly stagingSlots?: number;
}

export interface AgentVm {
  readonly vm: Vm;
  readonly agent: DirtyLogClient;
  readonly agentDir: AgentDir;
  /** Closes the agent connection, shuts the VM down and removes the agent's directory. */
  close(): Promise<void>;
}

/** Boots `options` with the agent preloaded, then connects and attaches it (not armed yet). */
export async function startVmWithAgent(
  options: VmOptions,
  agentOptions: AgentVmOptions = {},
): Promise<AgentVm> {
  const agentDir = await createAgentDir();
  let vm: Vm | undefined;
  try {
    vm = await Vm.start({
      ...options,
      preload: agentLibraryPath(),
      env: { ...(options.env ?? {}), VPC_DIRTY_LOG_SOCKET: agentDir.socketPath },
    });
    return await attachTo(vm, agentDir, agentOptions, options.logger);
  } catch (e) {
    await vm?.shutdown().catch(() => undefined);
    await agentDir.remove();
    throw e;
  }
}

/**
 * `restoreVm` with the agent preloaded into the new QEMU and attached. A lazy restore
 * (`options.lazy`) attaches once every page is in (one userfaultfd per range: tracking waits for
 * the lazy loader), so the result comes back with RAM complete and tracking ready — the guest
 * has run since `restored.timings.runningMs`.
 */
export async function restoreVmWithAgent(
  options: Omit<RestoreVmOptions, "overrides">,
  agentOptions: AgentVmOptions = {},
): Promise<AgentVm & { restored: RestoredVm }> {
  const agentDir = await createAgentDir();
  let restored: RestoredVm | undefined;
  try {
    restored = await restoreVm({
      ...options,
      overrides: { preload: agentLibraryPath(), env: { VPC_DIRTY_LOG_SOCKET: agentDir.socketPath } },
    });
    await restored.lazy?.loaded;
    return { ...(await attachTo(restored.vm, agentDir, agentOptions, options.logger)), restored };
  } catch (e) {
    await restored?.vm.shutdown().catch(() => undefined);
    await agentDir.remove();
    throw e;
  }
}

/** errno the agent reports when the kernel's userfaultfd lacks a mode's features. */
const ENOTSUP = 95;

async function attachTo(
  vm: Vm,
  agentDir: AgentDir,
  o: AgentVmOptions,
  logger: Logger | undefined,
): Promise<AgentVm> {
  const agent = await DirtyLogClient.connect(agentDir.socketPath, { timeoutMs: 10_000 });
  const stagingSlots = o.stagingSlots ?? (vm.config.memMiB * 1024 * 1024) / 4096;
  const mode = o.mode ?? "async";
  try {
    await agent.attach({ memPath: vm.ramPath, mode, stagingSlots });
  } catch (e) {
    // Only a kernel without WP_ASYNC/PAGEMAP_SCAN (< 6.7, e.g. Debian 12's 6.1 inside an L1
    // host) falls back; any other attach failure is real and must not be masked by a retry.
    const errno = AgentError.isInstance(e) && e.code === "AGENT_ERROR" ? (e as AgentError).errno : 0;
    if (o.mode !== undefined || errno !== ENOTSUP) throw e;
    (logger ?? defaultLogger()).log("warn", "vm.tracking-fallback", {
      vm: vm.name,
      wanted: "async",
      using: "sync",
      reason: (e as AgentError).agentMessage,
    });
    await agent.attach({ memPath: vm.ramPath, mode: "sync", stagingSlots });
  }
  return {
    vm,
    agent,
    agentDir,
    close: async () => {
      await agent.close().catch(() => undefined);
      await vm.shutdown();
      await agentDir.remove();
    },
  };
}
