export {
  CLUSTER_MANIFEST_FORMAT,
  Cluster,
  type ClusterOptions,
  type RestoreResult as ClusterRestoreResult,
} from "./cluster.js";
export {
  type ClusterConfig,
  type ClusterConfigInput,
  type ClusterHostConfig,
  type ClusterHostInput,
  type ClusterVmConfig,
  clusterVms,
  HOST_KINDS,
  type HostKind,
  loadClusterConfig,
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
export { type ClusterDemoOptions, type ClusterDemoResult, runClusterDemo } from "./demo.js";
export {
  ClusterConfigError,
  ClusterError,
  type ClusterErrorCode,
  EpochAbortedError,
  type RemoteErrorInfo,
  RpcError,
  TestbedError,
} from "./errors.js";
export { type RpcHandler, RpcPeer, type RpcPeerOptions } from "./rpc.js";
export { encodeRpcMessage, MAX_RPC_FRAME_BYTES, RpcDecoder, type RpcMessage } from "./rpc-codec.js";
export {
  type AgentSource,
  evaluateSshHost,
  HostKeyError,
  hostKeyFingerprint,
  parseSshProbe,
  SSH_PROBE_SCRIPT,
  type SshHostFacts,
} from "./ssh-host.js";
export { type SshHostState, SshPrerequisiteError } from "./ssh-host-remote.js";
export {
  readTestbedState,
  type TestbedHost,
  type TestbedHostSpec,
  type TestbedState,
  type TestbedUpOptions,
  testbedDown,
  testbedLeftovers,
  testbedUp,
} from "./testbed.js";
export {
  CONTROL_SOCKET_FILE,
  type ControlMethod,
  type ControlRequest,
  controlSocketPath,
  DAEMON_LOG_FILE,
  DAEMON_PID_FILE,
  type DaemonPhase,
  type DaemonStatus,
  type DaemonVmState,
  type DaemonVmStatus,
  type RestoreReport,
  type RunResult,
  TestbedControlClient,
  validateControlRequest,
} from "./testbed-control.js";
export { formatEpochLine, runTestbedDaemon, type TestbedDaemonOptions } from "./testbed-daemon.js";
export {
  acquireTestbedLock,
  argsName,
  type LockHolder,
  lockIsStale,
  lockPath,
  parseLockHolder,
  processArgs,
} from "./testbed-lock.js";
export {
  connectTestbed,
  liveDaemonPid,
  removeTestbed,
  reportProblems,
  type TestbedReport,
  type TestbedServiceUpOptions,
  type TestbedServiceUpResult,
  tailLines,
  testbedReport,
  testbedServiceDown,
  testbedServiceUp,
} from "./testbed-service.js";
export {
  checkConfigOnMachine,
  checkGuestRam,
  configGuestMiB,
  fabricConflicts,
  parseMemAvailableMiB,
  type TestbedSessionHostStatus,
  type TestbedSessionStatus,
  type TestbedSessionUpResult,
  testbedHostSpecs,
  testbedSessionDir,
  testbedSessionDown,
  testbedSessionRoot,
  testbedSessionStatus,
  testbedSessionUp,
} from "./testbed-session.js";
export { runProgress, runVerdict } from "./workload.js";
