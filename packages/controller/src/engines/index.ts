import { AgentEngine } from "./agent-engine.js";
import { QemuEngine } from "./qemu-engine.js";
import type { EngineSpec } from "./spec.js";
import type { CheckpointEngine, EngineContext } from "./types.js";

export {
  decodeEnvelope,
  ENVELOPE_MAGIC,
  type Envelope,
  type EnvelopeMeta,
  encodeEnvelope,
} from "./envelope.js";
export { EngineCheckpointError } from "./errors.js";
export {
  DEFAULT_VPC_STRATEGY,
  ENGINE_PARAMS,
  type EngineSpec,
  formatEngineSpec,
  parseEngineSpec,
} from "./spec.js";
export {
  type CheckpointSummary,
  type Distribution,
  distribution,
  quantile,
  summarizeCheckpoints,
} from "./summary.js";
export * from "./types.js";

/** A checkpoint engine that can release what it holds open. */
export type ClosableEngine = CheckpointEngine & { close(): Promise<void> };

/**
 * Builds the engine a parsed spec names. Parse the spec string once where it enters the process
 * (`parseEngineSpec("vpc(early-writers:windowMs=100)")`) and pass the value on; the engine's
 * `spec` (and its metrics' `engine`) is the canonical string `formatEngineSpec` gives.
 */
export function createEngine(spec: EngineSpec, ctx: EngineContext): ClosableEngine {
  return spec.name === "qemu-snapshot" || spec.name === "qemu-stop"
    ? new QemuEngine(ctx, spec)
    : new AgentEngine(ctx, spec);
}
export { type AgentVm, type AgentVmOptions, restoreVmWithAgent, startVmWithAgent } from "./agent-vm.js";
