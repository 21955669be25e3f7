import { AgentEngine } from "./agent-engine.js";
import { QemuEngine } from "./qemu-engine.js";
import { parseEngineSpec } from "./spec.js";
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

/** Builds the engine named by `spec` (e.g. `cow`, `vpc(early-writers:windowMs=100)`, `precopy:rounds=3`). */
export function createEngine(spec: string, ctx: EngineContext): ClosableEngine {
  const s = parseEngineSpec(spec);
  return s.name === "qemu-snapshot" || s.name === "qemu-stop"
    ? new QemuEngine(ctx, s)
    : new AgentEngine(ctx, s);
}
export { type AgentVm, type AgentVmOptions, restoreVmWithAgent, startVmWithAgent } from "./agent-vm.js";
