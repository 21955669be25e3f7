export {
  type CorruptionKind,
  StoreArgumentError,
  StoreChainError,
  StoreCorruptionError,
  StoreError,
  type StoreErrorCode,
  StoreIoError,
  StoreLockedError,
  StoreNotFoundError,
  StoreStateError,
  StoreVersionError,
} from "./errors.js";
export { FORMAT_MAJOR, FORMAT_MINOR } from "./internal/format.js";
export { NO_BLOCK, type RamLocation } from "./internal/locate.js";
export type { RestoreStrategy } from "./internal/reader.js";
export { type Compression, type EpochCommitInfo, EpochWriter } from "./internal/writer.js";
export {
  type FetchOptions,
  type FetchResult,
  type PushHooks,
  type PushResult,
  type RemoteOpenOptions,
  type S3Location,
  S3Store,
} from "./remote.js";
export {
  type NearestRestoreResult,
  type ReplicaResult,
  Replicator,
  type RestoreNearestOptions,
  restoreNearest,
} from "./replicate.js";
export {
  type BeginEpochOptions,
  CheckpointStore,
  type CleanOptions,
  type CompactResult,
  type EpochInfo,
  type NewestEpoch,
  type OpenOptions,
  type PartInfo,
  type RestoreOptions,
  type RestoreResult,
  type SkippedEpoch,
  type StoreInfo,
  type StoreProblem,
  type VerifyEachResult,
  type VerifyResult,
} from "./store.js";
export { type DecodedFile, decodeFile, encodeFile, type Hex64 } from "./tooling.js";
