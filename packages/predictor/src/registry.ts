import { PredictorError } from "./errors.js";
import {
  costAwareStrategy,
  earlyWritersStrategy,
  kOfNStrategy,
  lastStrategy,
  recencyStrategy,
} from "./strategies.js";
import type { Strategy } from "./strategy.js";

export interface ParamDef {
  name: string;
  /** Undefined: optional with no default. */
  default: number | undefined;
  min: number;
  max: number;
  /** Exclusive lower bound (min itself not allowed). */
  minExclusive?: boolean;
  integer?: boolean;
  description: string;
}

export interface StrategyKind {
  kind: string;
  description: string;
  params: ParamDef[];
  /** True when the strategy wraps another: `kind(inner-spec):params`. */
  wraps: boolean;
  create(params: Record<string, number | undefined>, inner: Strategy | undefined): Strategy;
}

const num = (p: Record<string, number | undefined>, k: string): number => p[k]!;

/** Pause-time and fault-cost defaults shared with the evaluator's cost model (FIELD-NOTES §6). */
export const DEFAULT_COPY_US = 1;
export const DEFAULT_FAULT_US = 16;

export const STRATEGY_KINDS: readonly StrategyKind[] = [
  {
    kind: "last",
    description: "pages written in the last interval (P = D)",
    params: [],
    wraps: false,
    create: () => lastStrategy(),
  },
  {
    kind: "k-of-n",
    description: "pages written in at least k of the last n intervals",
    params: [
      {
        name: "k",
        default: 2,
        min: 1,
        max: 64,
        integer: true,
        description: "intervals a page must be written in",
      },
      { name: "n", default: 4, min: 1, max: 64, integer: true, description: "intervals looked at" },
    ],
    wraps: false,
    create: (p) => kOfNStrategy({ k: num(p, "k"), n: num(p, "n") }),
  },
  {
    kind: "early-writers",
    description: "pages among the early part of the first-write order in >= minHits of the last m intervals",
    params: [
      {
        name: "fraction",
        default: undefined,
        min: 0,
        max: 1,
        minExclusive: true,
        description: "early part = this fraction of the order (default 0.5 unless windowMs is set)",
      },
      {
        name: "windowMs",
        default: undefined,
        min: 0,
        max: 1e9,
        description: "early part = first writes within this many ms of resume",
      },
      { name: "m", default: 4, min: 1, max: 64, integer: true, description: "intervals looked at" },
      {
        name: "minHits",
        default: 1,
        min: 1,
        max: 64,
        integer: true,
        description: "intervals a page must be early in",
      },
    ],
    wraps: false,
    create: (p) => {
      const o: { m: number; minHits: number; fraction?: number; windowMs?: number } = {
        m: num(p, "m"),
        minHits: num(p, "minHits"),
      };
      if (p.fraction !== undefined) o.fraction = p.fraction;
      if (p.windowMs !== undefined) o.windowMs = p.windowMs;
      return earlyWritersStrategy(o);
    },
  },
  {
    kind: "recency",
    description: "sum of decay^age over the last n intervals that wrote the page >= threshold",
    params: [
      {
        name: "decay",
        default: 0.7,
        min: 0,
        max: 1,
        minExclusive: true,
        description: "weight ratio per interval of age",
      },
      {
        name: "threshold",
        default: 1.2,
        min: 0,
        max: 64,
        minExclusive: true,
        description: "score needed (last interval = 1)",
      },
      { name: "n", default: 8, min: 1, max: 64, integer: true, description: "intervals looked at" },
    ],
    wraps: false,
    create: (p) =>
      recencyStrategy({ decay: num(p, "decay"), threshold: num(p, "threshold"), n: num(p, "n") }),
  },
  {
    kind: "cost-aware",
    description: "inner strategy's tiers above break-even confidence, capped by a pause-time budget",
    params: [
      {
        name: "budgetUs",
        default: 5000,
        min: 0,
        max: 1e9,
        description: "pause time allowed for copying P, µs",
      },
      {
        name: "copyUs",
        default: DEFAULT_COPY_US,
        min: 0,
        max: 1e6,
        minExclusive: true,
        description: "copy cost per page in the pause, µs",
      },
      {
        name: "faultUs",
        default: DEFAULT_FAULT_US,
        min: 0,
        max: 1e6,
        minExclusive: true,
        description: "vCPU stall per COW fault, µs",
      },
    ],
    wraps: true,
    create: (p, inner) =>
      costAwareStrategy(inner!, {
        budgetUs: num(p, "budgetUs"),
        copyUs: num(p, "copyUs"),
        faultUs: num(p, "faultUs"),
      }),
  },
];

function badSpec(spec: string, message: string): PredictorError {
  return new PredictorError("BAD_SPEC", `strategy spec "${spec}": ${message}`, { spec });
}

/** Index of the ")" matching the "(" at `open`, or -1. */
function matchingParen(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    if (s[i] === "(") depth++;
    else if (s[i] === ")" && --depth === 0) return i;
  }
  return -1;
}

/**
 * Builds a strategy from a spec:
 *   SPEC  ::= KIND [ "(" SPEC ")" ] [ ":" PARAM { "," PARAM } ]
 *   PARAM ::= NAME "=" NUMBER
 * e.g. `last`, `k-of-n:k=2,n=4`, `early-writers:windowMs=50,m=3`, `cost-aware(recency):budgetUs=2000`.
 * Unknown kinds, unknown or repeated parameters, bad numbers and out-of-range values throw a
 * PredictorError naming the spec and parameter.
 */
export function parseStrategy(spec: string): Strategy {
  const s = spec.trim();
  const m = /^[a-z][a-z0-9-]*/.exec(s);
  if (m === null) throw badSpec(spec, "expected a strategy name");
  const name = m[0];
  const def = STRATEGY_KINDS.find((k) => k.kind === name);
  if (def === undefined) {
    throw new PredictorError(
      "UNKNOWN_STRATEGY",
      `unknown strategy "${name}" (known: ${STRATEGY_KINDS.map((k) => k.kind).join(", ")})`,
      { spec },
    );
  }
  let at = name.length;
  let inner: Strategy | undefined;
  if (s[at] === "(") {
    if (!def.wraps) throw badSpec(spec, `${name} does not wrap another strategy`);
    const close = matchingParen(s, at);
    if (close < 0) throw badSpec(spec, "unbalanced parentheses");
    inner = parseStrategy(s.slice(at + 1, close));
    at = close + 1;
  } else if (def.wraps) {
    throw badSpec(spec, `${name} wraps another strategy: write ${name}(<spec>)`);
  }
  const given = new Map<string, number>();
  if (at < s.length) {
    if (s[at] !== ":") throw badSpec(spec, `unexpected "${s.slice(at)}"`);
    const body = s.slice(at + 1);
    if (body === "") throw badSpec(spec, "empty parameter list");
    for (const part of body.split(",")) {
      const eq = part.indexOf("=");
      const key = (eq < 0 ? part : part.slice(0, eq)).trim();
      const raw = eq < 0 ? "" : part.slice(eq + 1).trim();
      const p = def.params.find((d) => d.name === key);
      if (p === undefined) {
        const known = def.params.map((d) => d.name).join(", ") || "none";
        throw new PredictorError("BAD_PARAM", `${name}: unknown parameter "${key}" (known: ${known})`, {
          spec,
          param: key,
        });
      }
      if (given.has(key))
        throw new PredictorError("BAD_PARAM", `${name}: ${key} given twice`, { spec, param: key });
      const v = raw === "" ? Number.NaN : Number(raw);
      const low = p.minExclusive === true ? v <= p.min : v < p.min;
      if (!Number.isFinite(v) || low || v > p.max || (p.integer === true && !Number.isInteger(v))) {
        const range = `${p.minExclusive === true ? "(" : "["}${p.min}, ${p.max}]`;
        throw new PredictorError(
          "BAD_PARAM",
          `${name}: ${key} must be ${p.integer === true ? "an integer" : "a number"} in ${range}, got "${raw}"`,
          { spec, param: key },
        );
      }
      given.set(key, v);
    }
  }
  const params: Record<string, number | undefined> = {};
  for (const p of def.params) params[p.name] = given.get(p.name) ?? p.default;
  checkCrossParams(spec, name, params);
  return def.create(params, inner);
}

function checkCrossParams(spec: string, name: string, p: Record<string, number | undefined>): void {
  const fail = (param: string, message: string): never => {
    throw new PredictorError("BAD_PARAM", `${name}: ${message}`, { spec, param });
  };
  if (name === "k-of-n" && p.k! > p.n!) fail("k", `k (${p.k}) must not exceed n (${p.n})`);
  if (name === "early-writers") {
    if (p.fraction !== undefined && p.windowMs !== undefined)
      fail("windowMs", "give fraction or windowMs, not both");
    if (p.minHits! > p.m!) fail("minHits", `minHits (${p.minHits}) must not exceed m (${p.m})`);
  }
}

/** The default strategies the evaluator compares when none are given. */
export const DEFAULT_STRATEGY_SPECS: readonly string[] = [
  "last",
  "k-of-n:k=2,n=4",
  "early-writers",
  "recency",
  "cost-aware(early-writers)",
];
