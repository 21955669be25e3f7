export {
  CHANNEL_LOG_MAGIC,
  CHANNEL_LOG_VERSION,
  type ChannelLog,
  decodeChannelLog,
  encodeChannelLog,
} from "./channel-log.js";
export {
  FrameFormatError,
  type FrameFormatErrorOptions,
  TunnelAuthError,
  VnetError,
  type VnetErrorCode,
  type VnetErrorOptions,
} from "./errors.js";
export {
  encodeFrame,
  encodeFrames,
  FrameDecoder,
  type FrameDecoderOptions,
  LENGTH_PREFIX_BYTES,
  QEMU_MAX_FRAME_BYTES,
} from "./frame-codec.js";
export type { EventListener } from "./internal/events.js";
export { formatMac, parseMac } from "./mac.js";
export {
  type AddPortOptions,
  type ConnectTunnelOptions,
  type DropCounters,
  type ListenOptions,
  type PortStats,
  type SwitchStats,
  type TunnelStats,
  type VnetEvent,
  VnetSwitch,
  type VnetSwitchOptions,
} from "./switch.js";
export {
  type ChannelLogRecord,
  type DeliverAction,
  type PortCounters,
  type PortInfo,
  type SwitchAction,
  SwitchCore,
  type SwitchCoreOptions,
  type SwitchCounters,
  type TunnelFrameAction,
  type TunnelMarkAction,
} from "./switch-core.js";
export {
  decodeTunnelMessage,
  encodeTunnelFrame,
  encodeTunnelMark,
  TUNNEL_MAX_MESSAGE_BYTES,
  TUNNEL_PROTOCOL_VERSION,
  type TunnelMessage,
} from "./tunnel-codec.js";
