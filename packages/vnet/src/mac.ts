/** Ethernet header: destination MAC (6), source MAC (6), EtherType (2). */
export const ETH_HEADER_BYTES = 14;

/** A 48-bit MAC address as a JS number (exact: 2^48 < 2^53), for cheap Map keys. */
export function macKey(bytes: Uint8Array, at: number): number {
  return (
    ((bytes[at]! << 8) | bytes[at + 1]!) * 0x1_0000_0000 +
    (((bytes[at + 2]! << 24) | (bytes[at + 3]! << 16) | (bytes[at + 4]! << 8) | bytes[at + 5]!) >>> 0)
  );
}

/** Group bit (I/G) of the first octet: broadcast and multicast destinations. */
export function isGroupMac(bytes: Uint8Array, at: number): boolean {
  return (bytes[at]! & 1) === 1;
}

/** "52:54:00:12:34:56" → 6 bytes. */
export function parseMac(text: string): Uint8Array {
  const parts = text.split(":");
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) {
    throw new RangeError(`not a MAC address: ${JSON.stringify(text)}`);
  }
  return Uint8Array.from(parts, (p) => Number.parseInt(p, 16));
}

export function formatMac(bytes: Uint8Array, at = 0): string {
  const out: string[] = [];
  for (let i = 0; i < 6; i++) out.push(bytes[at + i]!.toString(16).padStart(2, "0"));
  return out.join(":");
}
