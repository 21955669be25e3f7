/**
 * Signed 64-bit integers (epochs, which may be -1, and microsecond times) stored as two 32-bit
 * halves, two's complement. Exact for every safe integer; avoids a BigInt per frame on the hot path.
 */

const TWO_32 = 0x1_0000_0000;

export function writeI64BE(buf: Buffer, value: number, at: number): void {
  const hi = Math.floor(value / TWO_32);
  buf.writeInt32BE(hi, at);
  buf.writeUInt32BE(value - hi * TWO_32, at + 4);
}

export function readI64BE(buf: Buffer, at: number): number {
  return buf.readInt32BE(at) * TWO_32 + buf.readUInt32BE(at + 4);
}

export function writeI64LE(buf: Buffer, value: number, at: number): void {
  const hi = Math.floor(value / TWO_32);
  buf.writeUInt32LE(value - hi * TWO_32, at);
  buf.writeInt32LE(hi, at + 4);
}

export function readI64LE(buf: Buffer, at: number): number {
  return buf.readInt32LE(at + 4) * TWO_32 + buf.readUInt32LE(at);
}

export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}
