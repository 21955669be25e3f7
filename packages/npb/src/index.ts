export { npbBinaryPath, npbBinDir } from "./bin-dir.js";
export { NpbError, type NpbErrorCode, type NpbErrorOptions } from "./errors.js";
export {
  isNpbClass,
  isNpbKernel,
  NPB_CLASSES,
  NPB_KERNELS,
  type NpbClass,
  type NpbKernel,
  type NpbResult,
  parseNpbResult,
} from "./result.js";
export { type NpbRun, type RunNpbOptions, runNpb } from "./run.js";
