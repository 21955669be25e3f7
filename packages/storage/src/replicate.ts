/**
 * Local first, then replicated: a Replicator pushes epochs committed in a local store to remote
 * stores in the background (after the VMs run again, so the upload is part of durability, not of
 * the pause), and restoreNearest restores from the nearest complete copy.
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { StoreCorruptionError, StoreError } from "./errors.js";
import type { FetchResult, PushResult, S3Store } from "./remote.js";
import type { CheckpointStore, RestoreOptions, RestoreResult } from "./store.js";

export interface ReplicaResult extends PushResult {
  /** `since` (the checkpoint's start, e.g. its `stop`) → the remote commit point written (ms). */
  durableMs: number;
}

/** Uploads committed epochs of one local store to one remote store, one epoch at a time, in order. */
export class Replicator {
  readonly local: CheckpointStore;
  readonly remote: S3Store;
  #queue: Promise<unknown> = Promise.resolve();
  #pending = 0;

  constructor(local: CheckpointStore, remote: S3Store) {
    this.local = local;
    this.remote = remote;
  }

  /**
   * Queues epoch `epoch` (committed in the local store) for upload and resolves when it is committed
   * remotely. `since` is a `performance.now()` reading (default: now) that `durableMs` counts from:
   * pass the time the checkpoint started to report its remote durability beside the local one.
   * A failed upload rejects this call only; later epochs still go up (with the parts they need).
   */
  replicate(epoch: number, since = performance.now()): Promise<ReplicaResult> {
    this.#pending++;
    const run = this.#queue.then(async () => {
      try {
        const r = await this.remote.push(this.local, epoch);
        return { ...r, durableMs: performance.now() - since };
      } finally {
        this.#pending--;
      }
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Epochs queued or uploading. */
  get pending(): number {
    return this.#pending;
  }

  /** Resolves when every queued upload has finished (failed ones included). */
  async drain(): Promise<void> {
    await this.#queue;
  }
}

export interface RestoreNearestOptions extends RestoreOptions {
  /** The local store (writable: a fetch from a remote lands in it). Tried first. */
  local: CheckpointStore;
  /** Remote copies, nearest first. */
  remotes?: readonly S3Store[];
}

export interface NearestRestoreResult extends RestoreResult {
  /** "local", or the remote's `s3://bucket/prefix` it came from. */
  source: string;
  /** Why nearer copies were passed over (missing epoch, incomplete chain, corrupt file). */
  skipped: { source: string; reason: string }[];
  fetch: FetchResult | null;
}

/**
 * Restores VM `vmId`'s RAM at `epoch` into `destPath` from the nearest complete copy: the local
 * store when it has the epoch with every file of the chain, else each remote in order (its chain is
 * fetched into the local store, reusing the local parts that are whole, then restored). A copy that
 * fails a check (corrupt, missing, chain hole) is passed over and named in `skipped`; when every copy
 * fails, the last error is thrown. Never returns data that is not the committed content.
 */
export async function restoreNearest(
  vmId: string,
  epoch: number,
  destPath: string,
  opts: RestoreNearestOptions,
): Promise<NearestRestoreResult> {
  const { local, remotes = [], ...restoreOpts } = opts;
  const skipped: NearestRestoreResult["skipped"] = [];
  let lastError: unknown;
  const passOver = (source: string, e: unknown): void => {
    if (!StoreError.isInstance(e) || e.code === "ARGUMENT") throw e;
    skipped.push({ source, reason: e.message });
    lastError = e;
  };
  try {
    await requireWholeChain(local, vmId, epoch);
    const r = await local.restoreRam(vmId, epoch, destPath, restoreOpts);
    return { ...r, source: "local", skipped, fetch: null };
  } catch (e) {
    passOver("local", e);
  }
  for (const remote of remotes) {
    const source = remote.url(remote.location.prefix ?? "");
    try {
      // After a local failure the local parts are hashed before they are reused.
      const fetch = await remote.fetch(epoch, local, { vmIds: [vmId], verifyLocal: true });
      const r = await local.restoreRam(vmId, epoch, destPath, restoreOpts);
      return { ...r, source, skipped, fetch };
    } catch (e) {
      passOver(source, e);
    }
  }
  throw lastError;
}

/** Throws unless every file of the chain is present with the length its manifest records. */
async function requireWholeChain(store: CheckpointStore, vmId: string, epoch: number): Promise<void> {
  for (const part of await store.describeChain(vmId, epoch)) {
    for (const f of part.files) {
      const path = join(part.dir, f.name);
      const size = await stat(path).then(
        (s) => s.size,
        () => -1,
      );
      if (size !== f.bytes) {
        const what = size < 0 ? "file is missing" : `file is ${size} bytes, manifest says ${f.bytes}`;
        throw new StoreCorruptionError(size < f.bytes ? "truncated" : "length", `${path}: ${what}`, {
          path,
          offset: Math.max(0, Math.min(size, f.bytes)),
          vmId,
          epoch,
        });
      }
    }
  }
}
