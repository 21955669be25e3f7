// Deterministic page workloads shared by the unit tests, the crash test and its child process
// (plain JS so that a spawned `node` can run it against the built package without a TS loader).

/** mulberry32: small, fast, deterministic. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mix(...parts) {
  let h = 2166136261;
  for (const ch of parts.join("/")) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
  return h >>> 0;
}

/** Fills a page: all zero, a compressible pattern, or random bytes (none of the latter two all zero). */
export function fillPage(page, rand) {
  const kind = rand();
  if (kind < 0.15) return page.fill(0);
  if (kind < 0.4) return page.fill(1 + Math.floor(rand() * 255));
  for (let i = 0; i < page.length; i += 4) page.writeUInt32LE(Math.floor(rand() * 4294967296), i);
  page[0] |= 1;
  return page;
}

/**
 * The pages VM `vmId` writes in `epoch`: every page for a full epoch, else a random subset with some
 * repeats (the last write wins). Returns page numbers and the pages concatenated in that order.
 */
export function epochDelta(seed, vmId, epoch, ramPages, pageSize, full) {
  const rand = prng(mix(seed, vmId, epoch));
  const numbers = [];
  if (full) for (let p = 0; p < ramPages; p++) numbers.push(p);
  else {
    const n = 1 + Math.floor(rand() * Math.max(1, ramPages / 4));
    for (let i = 0; i < n; i++) numbers.push(Math.floor(rand() * ramPages));
  }
  const data = Buffer.alloc(numbers.length * pageSize);
  for (let i = 0; i < numbers.length; i++) fillPage(data.subarray(i * pageSize, (i + 1) * pageSize), rand);
  return { numbers: Uint32Array.from(numbers), data };
}

/** Applies a delta to a RAM image in place. */
export function applyDelta(ram, delta, pageSize) {
  delta.numbers.forEach((p, i) => {
    delta.data.copy(ram, p * pageSize, i * pageSize, (i + 1) * pageSize);
  });
  return ram;
}

export const deviceStateOf = (vmId, epoch) =>
  Buffer.from(`devstate ${vmId} ${epoch} `.repeat(1 + (epoch % 7)));
export const channelLogOf = (vmId, epoch) => Buffer.from(epoch % 3 === 0 ? "" : `chanlog ${vmId} ${epoch}`);
