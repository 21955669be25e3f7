export { FakeQemu } from "./fake-qemu.js";
export { BROADCAST, ethFrame, vmMac } from "./frames.js";
