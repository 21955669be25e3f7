export {
  type AgentStats,
  type AttachInfo,
  type AttachOptions,
  type ConnectionState,
  type ConnectOptions,
  type CopyResult,
  DirtyLogClient,
  type FaultStats,
  type FirstWrites,
  type HarvestResult,
  type PeekResult,
  type TimerStats,
} from "./client.js";
export {
  AgentError,
  DirtyLogError,
  type DirtyLogErrorCode,
  type DirtyLogErrorOptions,
  InterruptedError,
  ProtocolError,
  StateError,
} from "./errors.js";
export {
  type AgentDir,
  type AgentEnvOptions,
  agentEnv,
  agentLibraryPath,
  createAgentDir,
  harnessPath,
} from "./paths.js";
export {
  COPY_ONLY_PROTECTED,
  decodeReply,
  encodeFrame,
  encodeReply,
  FLAG_ERROR,
  FRAME_HEADER_BYTES,
  type Frame,
  FrameDecoder,
  MAX_FRAME_BYTES,
  Op,
  type OpName,
  type Reply,
  requestBody,
  type TrackingMode,
} from "./protocol.js";
export {
  decodeSlotTable,
  decodeStagingHeader,
  SLOT_ENTRY_BYTES,
  type SlotSource,
  STAGING_MAGIC,
  STAGING_VERSION,
  type StagedSlot,
  type StagingHeader,
} from "./staging.js";
export { DirtyTraceRecorder, harvestToTraceRecord } from "./trace.js";
