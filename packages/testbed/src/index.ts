export {
  type ConfigHostStatus,
  type ConfigHostsStatus,
  checkConfigOnMachine,
  checkGuestRam,
  configGuestMiB,
  configHostsStatus,
  type EnsureConfigHostsResult,
  ensureConfigHosts,
  fabricConflicts,
  namedTestbedDir,
  namedTestbedsRoot,
  parseMemAvailableMiB,
  removeConfigHosts,
  testbedHostSpecs,
} from "./config-hosts.js";
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
} from "./control-socket.js";
export { formatEpochLine, runTestbedDaemon, type TestbedDaemonOptions } from "./daemon.js";
export {
  connectTestbed,
  liveDaemonPid,
  type NamedTestbedUpOptions,
  type NamedTestbedUpResult,
  namedTestbedDown,
  namedTestbedUp,
  removeTestbed,
  reportProblems,
  type TestbedReport,
  tailLines,
  testbedReport,
} from "./daemon-launcher.js";
export { type ClusterDemoOptions, type ClusterDemoResult, runClusterDemo } from "./demo.js";
export {
  type CheckStatus,
  DEFAULT_DOCTOR_POLICY,
  type DoctorCheck,
  type DoctorFacts,
  type DoctorPolicy,
  type DoctorReport,
  evaluateDoctor,
  formatDoctorReport,
} from "./doctor.js";
export { type DoctorOptions, gatherDoctorFacts, runDoctor } from "./doctor-probes.js";
export { HostSetupError, TestbedError, type TestbedErrorCode } from "./errors.js";
export { clusterHosts, testbedDown, testbedLeftovers, testbedUp } from "./hosts.js";
export {
  acquireTestbedLock,
  argsName,
  type LockHolder,
  lockIsStale,
  lockPath,
  parseLockHolder,
  processArgs,
} from "./lock.js";
export {
  DEFAULT_HOST_BOOT_TIMEOUT_MS,
  DEFAULT_HOST_MEM_MIB,
  defaultHostImageDir,
  type FabricOption,
  type HostImage,
  loadHostImage,
  QemuHost,
  type QemuHostOptions,
  type SshEndpoint,
} from "./qemu-host.js";
export {
  type AgentSource,
  evaluateSshHost,
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
} from "./state.js";
