/**
 * The I/O part of `vpc faults store`: lists a store's files, then per trial copies the store to a
 * scratch directory, damages the copy (never the store given), runs `verifyEach` on it and restores
 * the newest epoch of every VM the way `vpc restore` picks it, and compares what came back with the
 * undamaged store. All through @vpc/storage's public API; store-damage.ts decides the outcomes.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { cp, mkdtemp, open, rm, stat, truncate, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, relative } from "node:path";
import { CheckpointStore, StoreError } from "@vpc/storage";
import {
  classifyTrial,
  type Damage,
  damageCombinations,
  planDamages,
  type Report,
  type StoreFile,
  type TrialObservation,
  type TrialResult,
} from "./store-damage.js";

export interface StoreCampaignOptions {
  /** The store to copy; it is only read. */
  readonly storeDir: string;
  /** Default: one per (file kind, target, damage type) the store has. */
  readonly trials?: number;
  readonly seed: number;
  /** Where the per-trial copies go (default the system's temp directory). */
  readonly scratchDir?: string;
  /** One line per trial, as it ends. */
  readonly progress?: (line: string) => void;
}

export interface StoreCampaignResult {
  readonly storeDir: string;
  readonly seed: number;
  readonly newestEpoch: number;
  readonly vmIds: readonly string[];
  readonly files: number;
  readonly results: readonly TrialResult[];
}

/** What one VM's restore returned, reduced to a digest to compare against the undamaged store. */
type Digest = string;

/** The store's files a damage may hit, relative to its directory. */
async function damageableFiles(
  store: CheckpointStore,
  newest: number,
  vmIds: readonly string[],
): Promise<StoreFile[]> {
  const files: StoreFile[] = [];
  const add = async (kind: StoreFile["kind"], target: StoreFile["target"], path: string): Promise<void> => {
    const rel = relative(store.dir, path);
    if (files.some((f) => f.path === rel)) return;
    files.push({ kind, target, path: rel, bytes: (await stat(path)).size });
  };
  const globalOf = (e: number): string => join(store.dir, "epochs", `${String(e).padStart(16, "0")}.epoch`);
  await add("marker", "store", join(store.dir, "STORE"));
  await add("global", "newest", globalOf(newest));
  const committed = new Set(await store.listEpochs());
  for (const vmId of vmIds) {
    const chain = await store.describeChain(vmId, newest);
    for (const [i, part] of chain.entries()) {
      const target = i === 0 ? "newest" : "base";
      await add("manifest", target, join(part.dir, "manifest"));
      for (const f of part.files) await add(f.name as StoreFile["kind"], target, join(part.dir, f.name));
      if (i > 0 && committed.has(part.epoch)) await add("global", "base", globalOf(part.epoch));
    }
  }
  return files;
}

async function fileDigest(path: string, hash = createHash("sha256")): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

/** The RAM, device state and channel log of `vmId` at `epoch`, restored into `scratch`, as one digest. */
async function restoredDigest(
  store: CheckpointStore,
  vmId: string,
  epoch: number,
  scratch: string,
): Promise<Digest> {
  const hash = createHash("sha256");
  hash.update(await store.readDeviceState(vmId, epoch));
  hash.update(await store.readChannelLog(vmId, epoch));
  const ram = join(scratch, `${vmId}.ram`);
  try {
    await store.restoreRam(vmId, epoch, ram);
    await fileDigest(ram, hash);
  } finally {
    await rm(ram, { force: true });
  }
  return hash.digest("hex");
}

function reportOf(e: unknown): Report {
  if (StoreError.isInstance(e)) {
    return {
      code: e.code,
      message: e.message,
      ...(e.path === undefined ? {} : { path: e.path }),
      ...(e.offset === undefined ? {} : { offset: e.offset }),
    };
  }
  // A file system error of our own doing (scratch full, permissions) is not an outcome: stop.
  throw e;
}

async function injectDamage(copy: string, d: Damage): Promise<string> {
  const path = join(copy, d.file.path);
  if (d.type === "delete") await unlink(path);
  else if (d.type === "truncate") await truncate(path, d.length);
  else {
    const fh = await open(path, "r+");
    try {
      const byte = Buffer.alloc(1);
      await fh.read(byte, 0, 1, d.offset);
      byte[0]! ^= d.xor;
      await fh.write(byte, 0, 1, d.offset);
    } finally {
      await fh.close();
    }
  }
  return path;
}

/**
 * Runs the campaign. Throws before any trial if the store cannot be read or is not intact to begin
 * with (a damage is only measurable against a store that verifies).
 */
export async function runStoreDamageCampaign(o: StoreCampaignOptions): Promise<StoreCampaignResult> {
  const scratch = await mkdtemp(join(o.scratchDir ?? tmpdir(), "vpc-faults-store-"));
  try {
    const original = await CheckpointStore.open(o.storeDir, { readOnly: true });
    try {
      const { epoch: newest, skipped } = await original.newestEpoch();
      if (skipped.length > 0) {
        throw new StoreCampaignError(
          `${original.dir} is not intact: newer epochs are unusable (${skipped.map((s) => `epoch ${s.epoch}: ${s.reason}`).join("; ")}); run vpc store verify`,
        );
      }
      const verified = await original.verifyEach();
      if (verified.problems.length > 0) {
        throw new StoreCampaignError(
          `${original.dir} is not intact: ${verified.problems.length} problems (${verified.problems[0]!.message}); run vpc store verify`,
        );
      }
      const vmIds = (await original.describeEpoch(newest)).vmIds;
      const files = await damageableFiles(original, newest, vmIds);
      const damages = planDamages(files, o.trials ?? damageCombinations(files).length, o.seed);
      const expected = new Map<string, Digest>();
      const expectedDigest = async (vmId: string, epoch: number): Promise<Digest> => {
        const key = `${vmId}@${epoch}`;
        let d = expected.get(key);
        if (d === undefined) {
          d = await restoredDigest(original, vmId, epoch, scratch);
          expected.set(key, d);
        }
        return d;
      };
      for (const vmId of vmIds) await expectedDigest(vmId, newest);
      const results: TrialResult[] = [];
      for (const [i, damage] of damages.entries()) {
        const observation = await runTrial(original.dir, damage, newest, vmIds, scratch, expectedDigest);
        const r = { damage, ...classifyTrial(observation) };
        results.push(r);
        o.progress?.(`trial ${i + 1}/${damages.length}  ${r.outcome.padEnd(26)} ${damageLine(damage)}`);
      }
      return {
        storeDir: original.dir,
        seed: o.seed,
        newestEpoch: newest,
        vmIds,
        files: files.length,
        results,
      };
    } finally {
      await original.close();
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

const damageLine = (d: Damage): string =>
  `${d.file.path} ${d.type === "flip" ? `flip @${d.offset}` : d.type === "truncate" ? `truncate to ${d.length}` : "delete"}`;

async function runTrial(
  storeDir: string,
  damage: Damage,
  newestEpoch: number,
  vmIds: readonly string[],
  scratch: string,
  expectedDigest: (vmId: string, epoch: number) => Promise<Digest>,
): Promise<TrialObservation> {
  const copy = await mkdtemp(join(scratch, "trial-"));
  try {
    // The lock and temp entries are a live writer's business, not part of what was committed.
    await cp(storeDir, copy, {
      recursive: true,
      filter: (src) => basename(src) !== "LOCK" && !basename(src).startsWith(".tmp-"),
    });
    const damagedPath = await injectDamage(copy, damage);
    let store: CheckpointStore;
    try {
      store = await CheckpointStore.open(copy, { readOnly: true });
    } catch (e) {
      const error = reportOf(e);
      return { damage, damagedPath, newestEpoch, verify: [error], restore: { ok: false, error } };
    }
    try {
      let verify: Report[];
      try {
        verify = (await store.verifyEach()).problems.map((p) => ({
          code: p.code,
          path: p.path,
          message: p.message,
          ...(p.offset === undefined ? {} : { offset: p.offset }),
        }));
      } catch (e) {
        verify = [reportOf(e)];
      }
      try {
        let epoch = newestEpoch;
        const skipped: { epoch: number; path: string; reason: string }[] = [];
        let intact = true;
        for (const vmId of vmIds) {
          const picked = await store.newestEpoch(vmId);
          epoch = Math.min(epoch, picked.epoch);
          for (const s of picked.skipped) if (!skipped.some((x) => x.epoch === s.epoch)) skipped.push(s);
          const got = await restoredDigest(store, vmId, picked.epoch, copy);
          if (got !== (await expectedDigest(vmId, picked.epoch))) intact = false;
        }
        return { damage, damagedPath, newestEpoch, verify, restore: { ok: true, epoch, skipped, intact } };
      } catch (e) {
        return { damage, damagedPath, newestEpoch, verify, restore: { ok: false, error: reportOf(e) } };
      }
    } finally {
      await store.close();
    }
  } finally {
    await rm(copy, { recursive: true, force: true });
  }
}

/** The store given cannot be used for a campaign (not a store, not intact). */
export class StoreCampaignError extends Error {}
