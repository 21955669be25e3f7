/**
 * Engine specs (pure): `NAME [ "(" STRATEGY ")" ] [ ":" KEY=NUMBER { "," KEY=NUMBER } ]`, e.g.
 * `stop-copy`, `vpc`, `vpc(k-of-n:k=2,n=4)`, `precopy:rounds=4,threshold=256`.
 */
import { ConfigError } from "../errors.js";
import { ENGINE_NAMES, type EngineName } from "./types.js";

export interface EngineSpec {
  readonly name: EngineName;
  /** vpc only: the predictor strategy spec (default DEFAULT_VPC_STRATEGY). */
  readonly strategy: string | undefined;
  readonly params: Readonly<Record<string, number>>;
}

/** P = the pages that faulted (or would have) after at least two of the last four checkpoints. */
export const DEFAULT_VPC_STRATEGY = "k-of-n:k=2,n=4";

/** Parameters each engine accepts, with defaults. */
export const ENGINE_PARAMS: Readonly<Record<EngineName, Readonly<Record<string, number>>>> = {
  "stop-copy": {},
  // buffer: the most guest RAM the saver holds staged at once, in ‰ (0: no bound); COW faults may
  //   still use the staging beyond it. A bound caps the memory overhead but paces the saver to the
  //   drain (several times slower than its memcpy), which lengthens the COW window: off by default.
  cow: { buffer: 0 },
  // window: ms of the pre-pause window whose writes join P (0: none; it costs a re-protect
  //   scan while the guest runs), also the shortest save window the early-write peek covers;
  // front: % of a window run's length extrapolated past its end (sweeps move on; 0: none);
  // fallback: copy the whole save set once P covers this % of it (101: never);
  // learn: 1 = the strategy learns from the checkpoint-caused faults (W: pages that faulted, or
  //   were copied and written before the save ended), 0 = from whole dirty sets (the baseline);
  // adapt: 1 = each pause takes the plan (predict, cow-like P = ∅, or copy-all) that would have
  //   cost least on the last checkpoint seen in hindsight, by measured per-page and per-fault
  //   costs; 0 = always predict (the paper's scheme).
  vpc: { window: 0, front: 0, fallback: 90, learn: 1, buffer: 0, adapt: 1 },
  // Live rounds stop after `rounds` or once a round's dirty set is below `threshold` pages.
  precopy: { rounds: 4, threshold: 512, batch: 2048 },
  "qemu-snapshot": {},
  "qemu-stop": {},
};

export function parseEngineSpec(spec: string): EngineSpec {
  const fail = (msg: string): never => {
    throw new ConfigError("engine", `${JSON.stringify(spec)}: ${msg}`);
  };
  const m = /^([a-z-]+)(?:\((.*)\))?(?::(.*))?$/.exec(spec.trim());
  if (!m) return fail("expected NAME[(STRATEGY)][:KEY=N,...]");
  const name = m[1] as EngineName;
  if (!(ENGINE_NAMES as readonly string[]).includes(name))
    return fail(`unknown engine (one of ${ENGINE_NAMES.join(", ")})`);
  if (m[2] !== undefined && name !== "vpc") return fail("only vpc takes a strategy");
  const params: Record<string, number> = { ...ENGINE_PARAMS[name] };
  for (const kv of m[3] ? m[3].split(",") : []) {
    const [k, v, ...rest] = kv.split("=");
    if (!k || v === undefined || rest.length > 0) return fail(`bad parameter ${JSON.stringify(kv)}`);
    if (!(k in ENGINE_PARAMS[name])) return fail(`${name} has no parameter ${k}`);
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) return fail(`${k} must be a non-negative integer`);
    params[k] = n;
  }
  if (params.batch !== undefined && params.batch < 1) return fail("batch must be ≥ 1");
  if (params.learn !== undefined && params.learn > 1) return fail("learn must be 0 or 1");
  if (params.adapt !== undefined && params.adapt > 1) return fail("adapt must be 0 or 1");
  if (params.fallback !== undefined && params.fallback > 101) return fail("fallback must be ≤ 101 (%)");
  if (params.buffer !== undefined && params.buffer > 1000) return fail("buffer must be ≤ 1000 (‰)");
  const strategy = name === "vpc" ? (m[2] ?? DEFAULT_VPC_STRATEGY) : undefined;
  return { name, strategy, params };
}

/** The canonical spec string of a parsed spec. */
export function formatEngineSpec(s: EngineSpec): string {
  const p = Object.entries(s.params)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
  return `${s.name}${s.strategy === undefined ? "" : `(${s.strategy})`}${p ? `:${p}` : ""}`;
}
