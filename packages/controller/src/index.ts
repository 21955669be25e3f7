export {
  type AccelContext,
  defaultProbeCacheFile,
  type ProbeRecord,
  probeKey,
  probeKvm,
  resolveAccel,
} from "./accel.js";
export {
  CHECKPOINT_FORMAT,
  type CheckpointTimings,
  type FullCheckpoint,
  readFullCheckpoint,
  restoreOptionsFor,
  takeFullCheckpoint,
} from "./checkpoint.js";
export { CheckpointLoop, type CheckpointLoopOptions, type CheckpointLoopResult } from "./checkpoint-loop.js";
// The engines' own index is their curated public API.
export * from "./engines/index.js";
export {
  BootError,
  type BootFailure,
  CheckpointError,
  ConfigError,
  ControllerError,
  type ControllerErrorCode,
  GuestCommandError,
  GuestImageError,
  QemuExitedError,
  SshError,
  VmStateError,
} from "./errors.js";
export {
  COUNTER_FILE,
  type CounterReading,
  findCounterInRam,
  parseCounterLine,
  readCounter,
  startCounter,
} from "./guest-counter.js";
export { defaultGuestImageDir, type GuestImage, loadGuestImage } from "./guest-image.js";
export type { AccelOption, DataNicOption, VmConfig, VmConfigInput } from "./internal/config.js";
export { validateVmConfig } from "./internal/config.js";
export { type DurableWriteOptions, writeFileDurable } from "./internal/durable-write.js";
export type { Accel, DataNic, GuestParams } from "./internal/qemu-args.js";
export { reapNow } from "./internal/reaper.js";
export { SerialScanner } from "./internal/serial-scanner.js";
export { shellQuote } from "./internal/shell.js";
export type { LazyRestoreStats } from "./lazy-restore.js";
export { createJsonLogger, defaultLogger, type Logger, type LogLevel, silentLogger } from "./logger.js";
export { type RestoredVm, type RestoreVmOptions, restoreVm } from "./restore.js";
export {
  type DeviceStateSave,
  type DeviceStateTransport,
  type ExecResult,
  kvmProbeBoot,
  type RestoreOptions,
  type StartTimings,
  Vm,
  type VmOptions,
  type VmState,
} from "./vm.js";
