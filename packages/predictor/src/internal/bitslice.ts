/**
 * Word-parallel weighted threshold over bit-planes: for every page p, decides
 *   sum_i weights[i] * bit(planes[i], p) >= threshold
 * 32 pages at a time, by adding the planes into a bit-sliced counter (one 32-bit word per counter
 * bit, ripple carry) and comparing the counter with the threshold from its top bit down.
 * Weights are positive integers, threshold >= 1, so pages in no plane are never selected.
 */
export function weightedAtLeast(
  planes: readonly Uint32Array[],
  weights: readonly number[],
  threshold: number,
  out: Uint32Array,
): void {
  let total = 0;
  for (const w of weights) total += w;
  if (threshold > total) {
    out.fill(0);
    return;
  }
  const bits = Math.max(1, 32 - Math.clz32(total));
  const c = new Int32Array(bits);
  const n = out.length;
  const k = planes.length;
  for (let w = 0; w < n; w++) {
    let any = 0;
    for (let i = 0; i < k; i++) any |= planes[i]![w]!;
    if (any === 0) {
      out[w] = 0;
      continue;
    }
    c.fill(0);
    for (let i = 0; i < k; i++) {
      const x = planes[i]![w]!;
      if (x === 0) continue;
      let wt = weights[i]!;
      for (let level = 0; wt !== 0; level++, wt >>>= 1) {
        if ((wt & 1) === 0) continue;
        let carry = x;
        for (let t = level; carry !== 0 && t < bits; t++) {
          const s = c[t]!;
          c[t] = s ^ carry;
          carry = s & carry;
        }
      }
    }
    let gt = 0;
    let eq = -1;
    for (let t = bits - 1; t >= 0; t--) {
      const cb = c[t]!;
      if ((threshold >>> t) & 1) eq &= cb;
      else {
        gt |= eq & cb;
        eq &= ~cb;
      }
    }
    out[w] = (gt | eq) & any;
  }
}
