/**
 * The pure part of `vpc faults store`: which damage each trial injects into a copy of a checkpoint
 * store (a flipped byte, a truncation or a deletion, per file kind, on the newest epoch and on an
 * older part of its chain), how a trial's observations become an outcome, and the table of outcomes.
 * No I/O here: store-damage-campaign.ts copies, damages, verifies and restores.
 */

/** The files of a store, by what they hold (packages/storage/FORMAT.md). */
export const FILE_KINDS = ["pages", "index", "manifest", "devstate", "chanlog", "global", "marker"] as const;
export type FileKind = (typeof FILE_KINDS)[number];

export const FILE_KIND_LABELS: Record<FileKind, string> = {
  pages: "page data",
  index: "page index",
  manifest: "epoch manifest",
  devstate: "device state",
  chanlog: "channel log",
  global: "global manifest",
  marker: "store marker",
};

/**
 * Where the file sits relative to the newest committed epoch: in the newest epoch itself (its part,
 * its global manifest), in an older part the newest epoch's chain needs ("base"; its global
 * manifest too), or the store as a whole (the STORE marker).
 */
export const TARGETS = ["newest", "base", "store"] as const;
export type Target = (typeof TARGETS)[number];

export const DAMAGE_TYPES = ["flip", "truncate", "delete"] as const;
export type DamageType = (typeof DAMAGE_TYPES)[number];

/** A file a damage may hit; `path` is relative to the store directory. */
export interface StoreFile {
  readonly kind: FileKind;
  readonly target: Target;
  readonly path: string;
  readonly bytes: number;
}

export type Damage =
  | { readonly type: "flip"; readonly file: StoreFile; readonly offset: number; readonly xor: number }
  | { readonly type: "truncate"; readonly file: StoreFile; readonly length: number }
  | { readonly type: "delete"; readonly file: StoreFile };

/** A uniform [0, 1) generator from a 32-bit seed (xorshift32 over a splitmix-scrambled seed). */
export function seededRandom(seed: number): () => number {
  let z = (seed + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  let x = (z ^ (z >>> 16)) | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

/** Every (file kind, target, damage type) that `files` allows, in a fixed order. */
export function damageCombinations(
  files: readonly StoreFile[],
): { kind: FileKind; target: Target; type: DamageType }[] {
  const out: { kind: FileKind; target: Target; type: DamageType }[] = [];
  for (const kind of FILE_KINDS) {
    for (const target of TARGETS) {
      if (!files.some((f) => f.kind === kind && f.target === target)) continue;
      for (const type of DAMAGE_TYPES) out.push({ kind, target, type });
    }
  }
  return out;
}

/**
 * `trials` damages, the same for the same files and seed. The combinations are shuffled once and
 * dealt in turn, so every one is tried before any is tried twice; within a combination the file,
 * the offset of a flip (and its XOR mask) and the length a truncation leaves are drawn at random.
 */
export function planDamages(files: readonly StoreFile[], trials: number, seed: number): Damage[] {
  const combos = damageCombinations(files);
  if (combos.length === 0) throw new Error("the store has no files to damage");
  const rand = seededRandom(seed);
  const pick = (n: number): number => Math.floor(rand() * n);
  for (let i = combos.length - 1; i > 0; i--) {
    const j = pick(i + 1);
    [combos[i], combos[j]] = [combos[j]!, combos[i]!];
  }
  const damages: Damage[] = [];
  for (let t = 0; t < trials; t++) {
    const c = combos[t % combos.length]!;
    const candidates = files.filter((f) => f.kind === c.kind && f.target === c.target);
    const file = candidates[pick(candidates.length)]!;
    if (c.type === "flip") damages.push({ type: "flip", file, offset: pick(file.bytes), xor: 1 + pick(255) });
    else if (c.type === "truncate") damages.push({ type: "truncate", file, length: pick(file.bytes) });
    else damages.push({ type: "delete", file });
  }
  return damages;
}

export function describeDamage(d: Damage): string {
  const what =
    d.type === "flip"
      ? `byte at offset ${d.offset} XOR 0x${d.xor.toString(16).padStart(2, "0")}`
      : d.type === "truncate"
        ? `truncated from ${d.file.bytes} to ${d.length} bytes`
        : "deleted";
  return `${d.file.path}: ${what}`;
}

/** An error or a verify problem as the store reported it. */
export interface Report {
  readonly code: string;
  /** Absolute, as the store names it. */
  readonly path?: string;
  readonly offset?: number;
  readonly message: string;
}

/** What one trial saw on the damaged copy; paths are absolute in the copy. */
export interface TrialObservation {
  readonly damage: Damage;
  /** The damaged file in the copy. */
  readonly damagedPath: string;
  /** The newest committed epoch of the undamaged store. */
  readonly newestEpoch: number;
  /** What `verifyEach` reported (or the error that stopped it). */
  readonly verify: readonly Report[];
  /**
   * The attempt to restore the newest epoch of every VM the way `vpc restore` picks it: the epoch it
   * picked, the newer epochs it said it passed over, and whether the RAM, device state and channel
   * log it returned are those of the undamaged store at that epoch; or the error that stopped it.
   */
  readonly restore:
    | {
        readonly ok: true;
        readonly epoch: number;
        readonly skipped: readonly { epoch: number; path: string; reason: string }[];
        readonly intact: boolean;
      }
    | { readonly ok: false; readonly error: Report };
}

export const OUTCOMES = [
  "detected",
  "restored-older-with-notice",
  "harmless",
  "undetected",
  "silently-older",
  "unclear-error",
] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** Outcomes that fail the campaign: wrong data returned, an older epoch without a word, an error that does not say where. */
export const FAILING_OUTCOMES: readonly Outcome[] = ["undetected", "silently-older", "unclear-error"];

/** Whether a report points at the damaged file (and, for a flipped byte, at an offset in it). */
function pinpoints(r: Report, o: TrialObservation): boolean {
  const named = r.path === o.damagedPath || r.message.includes(o.damagedPath);
  return named && (o.damage.type !== "flip" || r.offset !== undefined);
}

/**
 * The outcome of one trial:
 * - `undetected`: the restore returned data that differs from the undamaged store's, with no error;
 * - `silently-older`: it restored an older epoch without naming the newest as passed over;
 * - `restored-older-with-notice`: it restored an older epoch, intact, and said which newer one it
 *   passed over, naming the damaged file;
 * - `detected`: an error or a verify problem names the damaged file (and an offset, for a flip);
 * - `unclear-error`: something failed, but nothing names the damaged file (or the offset of a flip);
 * - `harmless`: the newest epoch restored intact and verify found nothing (bytes nobody reads).
 */
export function classifyTrial(o: TrialObservation): { outcome: Outcome; detail: string } {
  const r = o.restore;
  const found = [...(r.ok ? [] : [r.error]), ...o.verify].find((x) => pinpoints(x, o));
  if (r.ok && !r.intact) {
    return { outcome: "undetected", detail: `epoch ${r.epoch} restored with different contents, no error` };
  }
  if (r.ok && r.epoch < o.newestEpoch) {
    const notice = r.skipped.find((s) => s.epoch === o.newestEpoch && s.reason.includes(o.damagedPath));
    return notice
      ? {
          outcome: "restored-older-with-notice",
          detail: `epoch ${r.epoch}; skipped ${notice.epoch}: ${notice.reason}`,
        }
      : {
          outcome: "silently-older",
          detail: `epoch ${r.epoch} restored, newest is ${o.newestEpoch}; notices: ${r.skipped.map((s) => s.reason).join("; ") || "none"}`,
        };
  }
  if (found) return { outcome: "detected", detail: `${found.code}: ${found.message}` };
  if (!r.ok || o.verify.length > 0) {
    const first = r.ok ? o.verify[0]! : r.error;
    return { outcome: "unclear-error", detail: `${first.code}: ${first.message}` };
  }
  return { outcome: "harmless", detail: `epoch ${r.epoch} restored intact; verify found nothing` };
}

export interface TrialResult {
  readonly damage: Damage;
  readonly outcome: Outcome;
  readonly detail: string;
}

/** One row per (file kind, target) tried, in FILE_KINDS × TARGETS order, counting each outcome. */
export interface OutcomeRow {
  readonly kind: FileKind;
  readonly target: Target;
  readonly injected: number;
  readonly outcomes: Record<Outcome, number>;
}

export function tallyOutcomes(results: readonly TrialResult[]): OutcomeRow[] {
  const rows: OutcomeRow[] = [];
  for (const kind of FILE_KINDS) {
    for (const target of TARGETS) {
      const mine = results.filter((r) => r.damage.file.kind === kind && r.damage.file.target === target);
      if (mine.length === 0) continue;
      const outcomes = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
      for (const r of mine) outcomes[r.outcome]++;
      rows.push({ kind, target, injected: mine.length, outcomes });
    }
  }
  return rows;
}

export const campaignFailed = (results: readonly TrialResult[]): boolean =>
  results.some((r) => FAILING_OUTCOMES.includes(r.outcome));

const COLUMN_TITLES: Record<Outcome, string> = {
  detected: "detected",
  "restored-older-with-notice": "older+notice",
  harmless: "harmless",
  undetected: "UNDETECTED",
  "silently-older": "SILENT-OLDER",
  "unclear-error": "UNCLEAR",
};

/** The table `vpc faults store` prints: damages injected per file kind × outcome, and a total row. */
export function formatOutcomeTable(rows: readonly OutcomeRow[]): string {
  const header = ["file (target)", "injected", ...OUTCOMES.map((o) => COLUMN_TITLES[o])];
  const total = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
  const body = rows.map((r) => {
    for (const o of OUTCOMES) total[o] += r.outcomes[o];
    return [
      `${FILE_KIND_LABELS[r.kind]} (${r.target})`,
      String(r.injected),
      ...OUTCOMES.map((o) => String(r.outcomes[o])),
    ];
  });
  const all = [
    header,
    ...body,
    ["total", String(rows.reduce((s, r) => s + r.injected, 0)), ...OUTCOMES.map((o) => String(total[o]))],
  ];
  const widths = header.map((_, i) => Math.max(...all.map((line) => line[i]!.length)));
  const fmt = (line: string[]): string =>
    `| ${line.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(" | ")} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? `${"-".repeat(w + 1)} ` : ` ${"-".repeat(w)}:`)).join("|")}|`;
  return [fmt(header), rule, ...all.slice(1).map(fmt)].join("\n");
}
