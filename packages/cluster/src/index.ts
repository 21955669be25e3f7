export { agentGuestImageDir, runHostAgent } from "./agent/main.js";
export {
  Cluster,
  type ClusterOptions,
  type HostEndpoint,
  type RestoreResult as ClusterRestoreResult,
} from "./cluster.js";
export {
  CLUSTER_MANIFEST_FORMAT,
  type ClusterManifest,
  decodeClusterManifest,
  encodeClusterManifest,
} from "./cluster-manifest.js";
export {
  type ClusterConfig,
  type ClusterConfigInput,
  type ClusterHostConfig,
  type ClusterHostInput,
  type ClusterVmConfig,
  clusterVms,
  formatIp,
  HOST_KINDS,
  type HostKind,
  loadClusterConfig,
  parsePrefix,
  type QemuHostConfig,
  qemuGuestBudgetMiB,
  qemuHostMiBFor,
  type SshHostConfig,
  validateClusterConfig,
} from "./config.js";
export {
  type EpochMetrics,
  type EpochParticipant,
  EpochRound,
  epochMetrics,
  type HostEpochReport,
  type RoundDecision,
  type RoundState,
  runGlobalEpoch,
  type VmEpochReport,
} from "./coordinator.js";
export {
  ClusterConfigError,
  ClusterError,
  type ClusterErrorCode,
  EpochAbortedError,
  type RemoteErrorInfo,
  RpcError,
} from "./errors.js";
export { defaultAgentModule, HostClient, type HostConnectOptions } from "./host-client.js";
export {
  FINGERPRINT,
  HostKeyError,
  type HostKeyVerdict,
  hostKeyFingerprint,
  verifyHostKey,
} from "./host-key.js";
export { type RpcHandler, RpcPeer, type RpcPeerOptions } from "./rpc.js";
export { encodeRpcMessage, MAX_RPC_FRAME_BYTES, RpcDecoder, type RpcMessage } from "./rpc-codec.js";
export {
  DONE,
  OUT,
  oversubscription,
  resultBlocks,
  runProgress,
  runVerdict,
  STARTED,
  workloadCommand,
} from "./workload.js";
