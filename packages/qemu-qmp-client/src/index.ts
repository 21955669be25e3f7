export { QMP_ID_PREFIX, QmpClient, type QmpClientOptions, type WaitForMigrationOptions } from "./client.js";
export type {
  ExecuteOptions,
  ExecuteParams,
  KnownCommand,
  MigrationCapabilityStatus,
  MigrationInfo,
  MigrationStats,
  MigrationStatus,
  QmpCommands,
  RunState,
  StatusInfo,
  VersionInfo,
} from "./commands.js";
export {
  type QmpAddress,
  QmpCommandError,
  QmpConnectError,
  QmpDisconnectedError,
  QmpError,
  type QmpErrorCode,
  QmpInterruptedError,
  QmpMigrationError,
  QmpOverflowError,
  QmpProtocolError,
  type QmpProtocolErrorReason,
  type QmpState,
  QmpStateError,
  QmpTimeoutError,
} from "./errors.js";
export { type EventListenerOptions, type EventNames, QmpEventListener } from "./events.js";
export type { QmpLogger } from "./logger.js";
export { encodeJsonLine, LineDecoder, type LineFrame } from "./protocol/lines.js";
export {
  classifyMessage,
  commandMessage,
  type QmpEvent,
  type QmpGreeting,
  type QmpMessage,
  type QmpVersion,
} from "./protocol/messages.js";
