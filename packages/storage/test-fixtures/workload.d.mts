export function prng(seed: number): () => number;
export function fillPage(page: Buffer, rand: () => number): Buffer;
export interface Delta {
  numbers: Uint32Array;
  data: Buffer;
}
export function epochDelta(
  seed: number,
  vmId: string,
  epoch: number,
  ramPages: number,
  pageSize: number,
  full: boolean,
): Delta;
export function applyDelta(ram: Buffer, delta: Delta, pageSize: number): Buffer;
export function deviceStateOf(vmId: string, epoch: number): Buffer;
export function channelLogOf(vmId: string, epoch: number): Buffer;
