export { FakeQemu } from "./fake-qemu.js";
export { BROADCAST, ethFrame, vmMac } from "./frames.js";
export { parseUdpCheckStatus, type UdpCheckCounts, type UdpCheckStatus } from "./udpcheck.js";
