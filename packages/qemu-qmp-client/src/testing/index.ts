export {
  FAKE_GREETING,
  type FakeCommandHandler,
  FakeQmpServer,
  type FakeQmpServerOptions,
  type FakeReply,
  type ReceivedCommand,
} from "./fake-server.js";
export { type QemuForQmp, type QemuForQmpOptions, startQemuForQmp } from "./qemu.js";
