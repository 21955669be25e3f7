export {
  type ConfigHostStatus,
  type ConfigHostsStatus,
  checkConfigOnMachine,
  configHostsStatus,
  type EnsureConfigHostsResult,
  ensureConfigHosts,
  fabricConflicts,
  namedTestbedDir,
  namedTestbedsRoot,
  removeConfigHosts,
  testbedHostSpecs,
} from "./config-hosts.js";
export {
  type ControlMethod,
  type ControlRequest,
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
  type NamedTestbedUpOptions,
  type NamedTestbedUpResult,
  namedTestbedDown,
  namedTestbedUp,
  type TestbedReport,
  tailLines,
  testbedReport,
} from "./daemon-launcher.js";
export { type ClusterDemoOptions, type ClusterDemoResult, runClusterDemo } from "./demo.js";
export {
  type CheckStatus,
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
export { acquireTestbedLock } from "./lock.js";
export {
  defaultHostImageDir,
  type FabricOption,
  type HostImage,
  QemuHost,
  type QemuHostOptions,
  type SshEndpoint,
} from "./qemu-host.js";
export {
  type AgentSource,
  evaluateSshHost,
  parseSshProbe,
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
