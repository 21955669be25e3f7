/**
 * Helpers for the guest program `vpc-counter` (images/guest/programs/vpc-counter.c), which
 * advances a counter in guest memory and publishes "COUNTER NONCE" to /run/vpc-counter.
 */
import { open } from "node:fs/promises";
import type { Vm } from "./vm.js";

export const COUNTER_FILE = "/run/vpc-counter";
const MAGIC = Buffer.from("VPCCNTR1", "ascii");

export interface CounterReading {
  readonly value: bigint;
  /** Random per run of the program; identifies its record in a RAM image. */
  readonly nonce: bigint;
}

/** Parses the published line, e.g. "1234 00ab...ff\n". */
export function parseCounterLine(text: string): CounterReading {
  const m = /^(\d+) ([0-9a-f]{16})\s*$/.exec(text);
  if (!m?.[1] || !m[2]) throw new Error(`not a vpc-counter line: ${JSON.stringify(text)}`);
  return { value: BigInt(m[1]), nonce: BigInt(`0x${m[2]}`) };
}

/** Starts vpc-counter in the background (detached from the SSH session) and waits for its first value. */
export async function startCounter(vm: Vm, args = ""): Promise<CounterReading> {
  await vm.run(`rm -f ${COUNTER_FILE}; setsid vpc-counter ${args} </dev/null >/dev/null 2>&1 &`);
  for (let i = 0; i < 200; i++) {
    const r = await vm.exec(`cat ${COUNTER_FILE} 2>/dev/null`);
    if (r.exitCode === 0 && r.stdout.length > 0) return parseCounterLine(r.stdout);
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`vpc-counter did not publish ${COUNTER_FILE}`);
}

export async function readCounter(vm: Vm): Promise<CounterReading> {
  return parseCounterLine(await vm.run(`cat ${COUNTER_FILE}`));
}

/**
 * Finds the counter record of the run with `nonce` in a RAM image and returns its value: the
 * exact value at the moment the image was taken. Undefined if the record is not there.
 */
export async function findCounterInRam(ramFile: string, nonce: bigint): Promise<bigint | undefined> {
  const pattern = Buffer.alloc(16);
  MAGIC.copy(pattern, 0);
  pattern.writeBigUInt64LE(nonce, 8);
  const chunk = 16 * 1024 * 1024;
  const overlap = 24;
  const buf = Buffer.alloc(chunk + overlap);
  const fh = await open(ramFile, "r");
  try {
    let carried = 0;
    for (let pos = 0; ; ) {
      const { bytesRead } = await fh.read(buf, carried, chunk, pos);
      if (bytesRead === 0) return undefined;
      const view = buf.subarray(0, carried + bytesRead);
      const at = view.indexOf(pattern);
      if (at >= 0 && at + 24 <= view.length) return view.readBigUInt64LE(at + 16);
      pos += bytesRead;
      carried = Math.min(overlap, view.length);
      view.copy(buf, 0, view.length - carried);
    }
  } finally {
    await fh.close();
  }
}
