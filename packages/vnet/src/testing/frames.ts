import { parseMac } from "../mac.js";

export const BROADCAST = "ff:ff:ff:ff:ff:ff";

/** A test Ethernet frame: dst, src, EtherType 0x88b5 (local experimental), then `size - 14` bytes of `fill`. */
export function ethFrame(dst: string, src: string, size = 64, fill = 0xab): Uint8Array {
  const f = new Uint8Array(Math.max(size, 14)).fill(fill);
  f.set(parseMac(dst), 0);
  f.set(parseMac(src), 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  return f;
}

/** The VM MAC used for test VM number `n` (QEMU's 52:54:00 prefix). */
export function vmMac(n: number): string {
  return `52:54:00:00:00:${n.toString(16).padStart(2, "0")}`;
}
