import { describe, expect, it } from "vitest";
import {
  campaignFailed,
  classifyTrial,
  type Damage,
  damageCombinations,
  formatOutcomeTable,
  planDamages,
  type StoreFile,
  seededRandom,
  type TrialObservation,
  tallyOutcomes,
} from "./store-damage.js";

const FILES: StoreFile[] = [
  { kind: "marker", target: "store", path: "STORE", bytes: 40 },
  { kind: "global", target: "newest", path: "epochs/0000000000000002.epoch", bytes: 72 },
  { kind: "pages", target: "newest", path: "vms/vm0/e0000000000000002/pages", bytes: 8232 },
  { kind: "pages", target: "base", path: "vms/vm0/e0000000000000000/pages", bytes: 65576 },
  { kind: "pages", target: "base", path: "vms/vm0/e0000000000000001/pages", bytes: 4136 },
  { kind: "index", target: "newest", path: "vms/vm0/e0000000000000002/index", bytes: 120 },
];

describe("seededRandom", () => {
  it("repeats for a seed, differs across seeds, stays in [0, 1)", () => {
    const draw = (seed: number) => {
      const r = seededRandom(seed);
      return Array.from({ length: 1000 }, () => r());
    };
    expect(draw(7)).toEqual(draw(7));
    expect(draw(7)).not.toEqual(draw(8));
    for (const x of [...draw(0), ...draw(0xffffffff)]) {
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThan(1);
    }
    // Roughly uniform: each tenth of [0, 1) gets 5-15 % of 1000 draws.
    const tenths = new Array<number>(10).fill(0);
    for (const x of draw(3)) tenths[Math.floor(x * 10)]!++;
    for (const t of tenths) expect(t).toBeGreaterThan(50);
  });
});

describe("planDamages", () => {
  it("offers every damage type for each (file kind, target) the store has, and no other", () => {
    const combos = damageCombinations(FILES);
    expect(combos).toHaveLength(5 * 3);
    expect(new Set(combos.map((c) => `${c.kind}/${c.target}`))).toEqual(
      new Set(["marker/store", "global/newest", "pages/newest", "pages/base", "index/newest"]),
    );
  });

  it("tries every combination once before any twice, the same for the same seed", () => {
    const plan = planDamages(FILES, 15, 42);
    expect(planDamages(FILES, 15, 42)).toEqual(plan);
    expect(planDamages(FILES, 15, 43)).not.toEqual(plan);
    const key = (d: Damage) => `${d.file.kind}/${d.file.target}/${d.type}`;
    expect(new Set(plan.map(key)).size).toBe(15);
    const twice = planDamages(FILES, 30, 42);
    expect(twice.slice(15).map(key)).toEqual(plan.map(key));
  });

  it("draws offsets and lengths inside the file, and a flip that changes the byte", () => {
    const rand = seededRandom(5);
    for (let i = 0; i < 20; i++) {
      for (const d of planDamages(FILES, 45, Math.floor(rand() * 2 ** 32))) {
        expect(FILES).toContain(d.file);
        if (d.type === "flip") {
          expect(d.offset).toBeGreaterThanOrEqual(0);
          expect(d.offset).toBeLessThan(d.file.bytes);
          expect(d.xor).toBeGreaterThanOrEqual(1);
          expect(d.xor).toBeLessThanOrEqual(255);
        }
        if (d.type === "truncate") expect(d.length).toBeLessThan(d.file.bytes);
      }
    }
    // Both base page files get picked.
    const bases = planDamages(FILES, 300, 1).filter(
      (d) => d.file.kind === "pages" && d.file.target === "base",
    );
    expect(new Set(bases.map((d) => d.file.path)).size).toBe(2);
  });

  it("refuses a store with no files", () => {
    expect(() => planDamages([], 1, 1)).toThrow(/no files/);
  });
});

const PAGES = "/s/vms/vm0/e0000000000000002/pages";
const GLOBAL = "/s/epochs/0000000000000002.epoch";
const flip: Damage = { type: "flip", file: FILES[2]!, offset: 100, xor: 1 };
const del: Damage = { type: "delete", file: FILES[1]! };

function obs(o: Partial<TrialObservation>): TrialObservation {
  return {
    damage: flip,
    damagedPath: PAGES,
    newestEpoch: 2,
    verify: [],
    restore: { ok: true, epoch: 2, skipped: [], intact: true },
    ...o,
  };
}

describe("classifyTrial", () => {
  it("detected: an error or a verify problem names the file, and the offset of a flip", () => {
    const error = { code: "CORRUPT", path: PAGES, offset: 64, message: `${PAGES}: block hash at offset 64` };
    expect(classifyTrial(obs({ restore: { ok: false, error } })).outcome).toBe("detected");
    expect(classifyTrial(obs({ verify: [error] })).outcome).toBe("detected");
    const noOffset = { code: "CORRUPT", path: PAGES, message: "bad" };
    expect(classifyTrial(obs({ verify: [noOffset] })).outcome).toBe("unclear-error");
    // A deletion needs no offset; the file named in the message is enough.
    const missing = { code: "CHAIN", message: `part is missing: ${GLOBAL} does not exist` };
    expect(
      classifyTrial(obs({ damage: del, damagedPath: GLOBAL, restore: { ok: false, error: missing } }))
        .outcome,
    ).toBe("detected");
  });

  it("unclear-error: a failure that names another file or none", () => {
    const elsewhere = { code: "CORRUPT", path: "/s/other", offset: 1, message: "/s/other: bad" };
    const r = classifyTrial(obs({ restore: { ok: false, error: elsewhere } }));
    expect(r).toEqual({ outcome: "unclear-error", detail: "CORRUPT: /s/other: bad" });
  });

  it("undetected: different data without an error, even if verify complained", () => {
    const error = { code: "CORRUPT", path: PAGES, offset: 64, message: "x" };
    const o = obs({ verify: [error], restore: { ok: true, epoch: 2, skipped: [], intact: false } });
    expect(classifyTrial(o).outcome).toBe("undetected");
  });

  it("an older epoch: with a notice naming the newest epoch and the file, or silently", () => {
    const notice = { epoch: 2, path: GLOBAL, reason: `its global manifest ${GLOBAL} fails its check` };
    const older = (skipped: (typeof notice)[]) =>
      classifyTrial(
        obs({ damage: del, damagedPath: GLOBAL, restore: { ok: true, epoch: 1, skipped, intact: true } }),
      ).outcome;
    expect(older([notice])).toBe("restored-older-with-notice");
    expect(older([])).toBe("silently-older");
    expect(older([{ ...notice, epoch: 3 }])).toBe("silently-older");
    expect(older([{ ...notice, reason: "something else" }])).toBe("silently-older");
  });

  it("harmless: the newest epoch intact and nothing reported", () => {
    expect(classifyTrial(obs({})).outcome).toBe("harmless");
  });
});

describe("the outcome table", () => {
  it("counts outcomes per file kind and target, with a total, and fails on the failing outcomes", () => {
    const results = [
      { damage: flip, outcome: "detected" as const, detail: "" },
      { damage: flip, outcome: "detected" as const, detail: "" },
      { damage: del, outcome: "restored-older-with-notice" as const, detail: "" },
    ];
    const rows = tallyOutcomes(results);
    expect(rows.map((r) => [r.kind, r.target, r.injected])).toEqual([
      ["pages", "newest", 2],
      ["global", "newest", 1],
    ]);
    expect(rows[0]!.outcomes.detected).toBe(2);
    expect(rows[1]!.outcomes["restored-older-with-notice"]).toBe(1);
    const table = formatOutcomeTable(rows).split("\n");
    expect(table[0]).toMatch(
      /^\| file \(target\) +\| injected \| detected \| older\+notice \| harmless \| UNDETECTED/,
    );
    expect(table[2]).toMatch(/^\| page data \(newest\) +\| +2 \| +2 \| +0 \|/);
    expect(table.at(-1)).toMatch(/^\| total +\| +3 \| +2 \| +1 \| +0 \| +0 \| +0 \| +0 \|$/);
    expect(new Set(table.map((l) => l.length)).size).toBe(1);
    expect(campaignFailed(results)).toBe(false);
    for (const bad of ["undetected", "silently-older", "unclear-error"] as const) {
      expect(campaignFailed([...results, { damage: flip, outcome: bad, detail: "" }])).toBe(true);
    }
    expect(campaignFailed([{ damage: flip, outcome: "harmless", detail: "" }])).toBe(false);
  });
});
