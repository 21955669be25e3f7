/**
 * A copy of a checkpoint store on the S3 API (Ceph RGW, MinIO, the clouds): committed epochs of a
 * local store are pushed to it and fetched back into a local store to be restored.
 *
 * Same format, same checksums, same commit protocol as the local store (FORMAT.md §4): objects hold
 * the bytes of the files of the same name and are never overwritten (every PUT is conditional,
 * `If-None-Match: *`), a part's files go up before its manifest, and an epoch becomes visible with
 * one conditional PUT of its global manifest — the commit point. An interrupted push leaves objects
 * no global manifest names (invisible); a concurrent push of the same epoch loses the conditional
 * PUT and is refused. A fetch checks every object against the manifest that names it (length and
 * XXH64) while it streams to disk, and publishes a part only when all its files passed.
 */

import { mkdir, open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { Xxh64 } from "@node-rs/xxhash";
import type { Client } from "minio";
import {
  StoreArgumentError,
  StoreChainError,
  StoreCorruptionError,
  StoreError,
  StoreIoError,
  StoreNotFoundError,
  StoreStateError,
} from "./errors.js";
import {
  type Ctx,
  corrupt,
  decodeGlobalManifest,
  decodeStoreMarker,
  decodeVmManifest,
  encodeStoreMarker,
  type GlobalManifest,
  hash64,
  PART_FILES,
  type PartFileName,
  type VmManifest,
} from "./internal/format.js";
import { fsyncDir, io, publish, readIfExists, removeTree, writeAll, writeWhole } from "./internal/fsio.js";
import {
  checkEpoch,
  checkVmId,
  EPOCHS_DIR,
  globalName,
  type PartKind,
  partName,
  tempName,
  VMS_DIR,
} from "./internal/layout.js";
import {
  epochsPrefix,
  globalKey,
  normalizePrefix,
  parseGlobalKey,
  partKey,
  storeKey,
} from "./internal/object-keys.js";
import type { CheckpointStore, EpochInfo } from "./store.js";

/** Where a remote store lives. */
export interface S3Location {
  /** `http://host:port` or `https://host`. */
  endpoint: string;
  accessKey: string;
  secretKey: string;
  /** Signing region; RGW accepts any name its zone group has ("default" for a fresh cluster). */
  region?: string;
  bucket: string;
  /** Key prefix inside the bucket, e.g. "cluster-a/" (several stores can share a bucket). */
  prefix?: string;
}

export interface RemoteOpenOptions {
  /** Create the bucket and the store marker when absent. */
  create?: boolean;
  /**
   * Files up to this size go up in one conditional PUT (default 512 MiB; the S3 limit is 5 GiB).
   * Larger ones use a multipart upload, invisible until complete, but the condition is then only
   * checked before the upload starts (see README, limits).
   */
  singlePutMaxBytes?: number;
  /**
   * VMs pushed or fetched at once (default 2); each holds one file in memory while it goes up.
   * One VM's parts always go in order.
   */
  parallelVms?: number;
}

export interface PushResult {
  epoch: number;
  vmIds: string[];
  /** Parts uploaded by this push, as `vm/part`; parts already there were left alone. */
  partsUploaded: string[];
  objectsUploaded: number;
  bytesUploaded: number;
  /** The epoch was already committed remotely with the same global manifest (a repeated push). */
  alreadyCommitted: boolean;
  durationMs: number;
}

export interface FetchOptions {
  /** Only these VMs' chains (default: every VM of the epoch). The epoch manifest is always whole. */
  vmIds?: readonly string[];
  /** Hash local parts before reusing them (default: their manifest and file lengths must match). */
  verifyLocal?: boolean;
}

export interface FetchResult {
  epoch: number;
  vmIds: string[];
  partsFetched: string[];
  partsReused: string[];
  bytesFetched: number;
  durationMs: number;
}

/** Hooks for tests: called after each object of a push is stored (throwing stops the push there). */
export interface PushHooks {
  afterObject?: (key: string) => void | Promise<void>;
}

const DEFAULT_SINGLE_PUT_MAX = 512 << 20;
const HASH_META = "vpc-xxh64";
const MIB = 1 << 20;

type S3Failure = { code?: string; message?: string };
const s3Code = (e: unknown): string | undefined => (e as S3Failure | undefined)?.code;
const isMissing = (e: unknown): boolean =>
  ["NoSuchKey", "NotFound", "NoSuchBucket"].includes(s3Code(e) ?? "");
const hex = (h: bigint): string => `0x${h.toString(16).padStart(16, "0")}`;

export class S3Store {
  readonly location: Readonly<S3Location>;
  readonly #client: Client;
  readonly #prefix: string;
  readonly #singlePutMax: number;
  readonly #parallelVms: number;

  private constructor(location: S3Location, opts: RemoteOpenOptions, S3Client: typeof Client) {
    this.location = { ...location };
    this.#prefix = normalizePrefix(location.prefix);
    this.#singlePutMax = opts.singlePutMaxBytes ?? DEFAULT_SINGLE_PUT_MAX;
    this.#parallelVms = opts.parallelVms ?? 2;
    const url = parseEndpoint(location.endpoint);
    this.#client = new S3Client({
      endPoint: url.hostname,
      port: Number(url.port || (url.protocol === "https:" ? 443 : 80)),
      useSSL: url.protocol === "https:",
      accessKey: location.accessKey,
      secretKey: location.secretKey,
      region: location.region ?? "us-east-1",
      pathStyle: true,
      // One part per file up to the single-PUT size, so those files go up in one conditional PUT.
      partSize: Math.max(this.#singlePutMax, 5 * MIB),
    });
  }

  /** Opens the store at `location`; with `create`, makes the bucket and the store marker if absent. */
  static async open(location: S3Location, opts: RemoteOpenOptions = {}): Promise<S3Store> {
    const max = opts.singlePutMaxBytes ?? DEFAULT_SINGLE_PUT_MAX;
    if (!Number.isInteger(max) || max < 5 * MIB || max > 5 * 1024 * MIB) {
      throw new StoreArgumentError(`singlePutMaxBytes ${max} must be 5 MiB … 5 GiB`);
    }
    const parallel = opts.parallelVms ?? 2;
    if (!Number.isInteger(parallel) || parallel < 1) {
      throw new StoreArgumentError(`parallelVms ${parallel} must be a positive integer`);
    }
    // Loaded here, not at import: minio's module graph takes ~40 s to evaluate inside an L1 VM
    // (TCG), where the host agent imports this package and must answer `init` within 30 s.
    const { Client: S3Client } = await import("minio");
    const s = new S3Store(location, opts, S3Client);
    const bucket = s.location.bucket;
    const exists = await s.#s3("HEAD bucket", bucket, () => s.#client.bucketExists(bucket));
    if (!exists) {
      if (!opts.create)
        throw new StoreNotFoundError(`bucket ${bucket} does not exist at ${location.endpoint}`);
      await s.#s3("create bucket", bucket, () => s.#client.makeBucket(bucket, location.region ?? ""));
    }
    const key = storeKey(s.#prefix);
    let marker = await s.#getIfExists(key);
    if (marker === undefined) {
      if (!opts.create)
        throw new StoreNotFoundError(`${s.url(key)} is not a checkpoint store`, { path: s.url(key) });
      // A racing creator wins or loses the conditional PUT; either way one marker exists after it.
      const mine = encodeStoreMarker({ createdAtMs: Date.now() });
      await s.#putOnce(key, mine).catch((e: unknown) => {
        if (!(StoreError.isInstance(e) && e.code === "STATE")) throw e;
      });
      marker = await s.#get(key);
    }
    decodeStoreMarker(marker, { path: s.url(key) });
    return s;
  }

  /** `s3://bucket/key`: how errors and reports name an object. */
  url(key: string): string {
    return `s3://${this.location.bucket}/${key}`;
  }

  /** Globally committed epochs, oldest first (listing `epochs/`; the manifests are read by fetch). */
  async listEpochs(): Promise<number[]> {
    const head = epochsPrefix(this.#prefix);
    const keys = await this.#s3("LIST", this.url(head), async () => {
      const out: string[] = [];
      for await (const o of this.#client.listObjectsV2(this.location.bucket, head, true)) {
        if (o.name) out.push(o.name);
      }
      return out;
    });
    return keys
      .map((k) => parseGlobalKey(this.#prefix, k))
      .filter((e): e is number => e !== undefined)
      .sort((a, b) => a - b);
  }

  async describeEpoch(epoch: number): Promise<EpochInfo> {
    const { manifest } = await this.#readGlobal(checkEpoch(epoch));
    return { epoch, createdAtMs: manifest.createdAtMs, vmIds: manifest.vms.map((v) => v.vmId) };
  }

  /**
   * Uploads epoch `epoch` of `local` (globally committed there): for each VM, the parts of its chain
   * not yet stored remotely (oldest first, each part's files before its manifest), then the global
   * manifest with one conditional PUT. Refused (`STATE`) when another writer committed that epoch or
   * stored different bytes under one of its names; the local store is only read.
   */
  async push(local: CheckpointStore, epoch: number, hooks: PushHooks = {}): Promise<PushResult> {
    const t0 = performance.now();
    checkEpoch(epoch);
    const gmPath = join(local.dir, EPOCHS_DIR, globalName(epoch));
    const gmBytes = await readIfExists(gmPath);
    if (gmBytes === undefined) {
      throw new StoreNotFoundError(`epoch ${epoch} is not committed in ${local.dir}`, {
        epoch,
        path: gmPath,
      });
    }
    const gm = decodeGlobalManifest(gmBytes, { path: gmPath, epoch });
    const result: PushResult = {
      epoch,
      vmIds: gm.vms.map((v) => v.vmId),
      partsUploaded: [],
      objectsUploaded: 0,
      bytesUploaded: 0,
      alreadyCommitted: false,
      durationMs: 0,
    };
    const gKey = globalKey(this.#prefix, epoch);
    const existing = await this.#statIfExists(gKey);
    if (existing && existing.hash === hex(hash64(gmBytes))) {
      return { ...result, alreadyCommitted: true, durationMs: performance.now() - t0 };
    }
    const upload = async (key: string, bytes: Buffer): Promise<void> => {
      if (await this.#putOnce(key, bytes)) {
        result.objectsUploaded++;
        result.bytesUploaded += bytes.length;
      }
      await hooks.afterObject?.(key);
    };
    await eachLimited(
      gm.vms.map((v) => v.vmId),
      this.#parallelVms,
      async (vmId) => {
        const chain = await local.describeChain(vmId, epoch);
        // Newest first: stop at the first part already stored (its parents went up before it).
        const missing: typeof chain = [];
        for (const part of chain) {
          if (await this.#statIfExists(partKey(this.#prefix, vmId, part.name, "manifest"))) break;
          missing.push(part);
        }
        for (const part of missing.reverse()) {
          const mPath = join(part.dir, "manifest");
          const mBytes = await io("read", mPath, () => readFile(mPath));
          const manifest = decodeVmManifest(mBytes, { path: mPath, vmId, epoch: part.epoch });
          for (const name of PART_FILES) {
            const bytes = await readCheckedFile(part.dir, name, manifest);
            await upload(partKey(this.#prefix, vmId, part.name, name), bytes);
          }
          await upload(partKey(this.#prefix, vmId, part.name, "manifest"), mBytes);
          result.partsUploaded.push(`${vmId}/${part.name}`);
        }
      },
    );
    result.partsUploaded.sort();
    if (await this.#putOnce(gKey, gmBytes, "commit")) {
      result.objectsUploaded++;
      result.bytesUploaded += gmBytes.length;
    }
    result.durationMs = performance.now() - t0;
    return result;
  }

  /**
   * Downloads what `into` (a writable local store) lacks of epoch `epoch`: each VM's chain, every
   * object checked against the manifest naming it while it streams to a temp directory, each part
   * published by a rename when whole, and the global manifest last, so `into` then restores the
   * epoch like one of its own. A corrupt or missing object fails the fetch naming it; nothing of
   * the epoch becomes visible in `into`.
   */
  async fetch(epoch: number, into: CheckpointStore, opts: FetchOptions = {}): Promise<FetchResult> {
    const t0 = performance.now();
    checkEpoch(epoch);
    if (into.readOnly) {
      throw new StoreStateError(`fetch needs a writable local store, ${into.dir} is read-only`, {
        op: "fetch",
        epoch,
        state: "read-only",
        required: "writable",
      });
    }
    const { manifest: gm, bytes: gmBytes } = await this.#readGlobal(epoch);
    const wanted = opts.vmIds ?? gm.vms.map((v) => v.vmId);
    const result: FetchResult = {
      epoch,
      vmIds: [...wanted],
      partsFetched: [],
      partsReused: [],
      bytesFetched: gmBytes.length,
      durationMs: 0,
    };
    await eachLimited(wanted, this.#parallelVms, async (vmId) => {
      const ref = gm.vms.find((v) => v.vmId === checkVmId(vmId));
      if (!ref) throw new StoreNotFoundError(`${vmId} is not part of remote epoch ${epoch}`, { vmId, epoch });
      let partEpoch = epoch;
      let hash = ref.manifestHash;
      for (;;) {
        const part = await this.#fetchPart(into, vmId, partEpoch, hash, epoch, opts, result);
        if (part.full) break;
        if (part.parentEpoch === null || part.parentEpoch >= partEpoch) {
          throw new StoreChainError(
            `${vmId} epoch ${epoch}: part of epoch ${partEpoch} has no older parent`,
            {
              vmId,
              epoch,
              missingEpoch: part.parentEpoch ?? partEpoch,
            },
          );
        }
        hash = part.parentManifestHash;
        partEpoch = part.parentEpoch;
      }
    });
    const dir = join(into.dir, EPOCHS_DIR);
    const final = join(dir, globalName(epoch));
    const have = await readIfExists(final);
    if (have === undefined) {
      await io("mkdir", dir, () => mkdir(dir, { recursive: true }));
      const tmp = join(dir, tempName(`fetch-${epoch}`));
      await writeWhole(tmp, gmBytes, true);
      await publish(tmp, final, dir, true);
    } else if (!have.equals(gmBytes)) {
      throw new StoreStateError(`${final} differs from ${this.url(globalKey(this.#prefix, epoch))}`, {
        op: "fetch",
        epoch,
        path: final,
        state: "another epoch manifest",
        required: "the remote one",
      });
    }
    result.durationMs = performance.now() - t0;
    return result;
  }

  // ------------------------------------------------------------------ fetch helpers

  /** Makes the part of (vmId, epoch) bound to `hash` present in `into`; returns its manifest. */
  async #fetchPart(
    into: CheckpointStore,
    vmId: string,
    epoch: number,
    hash: bigint,
    restoring: number,
    opts: FetchOptions,
    result: FetchResult,
  ): Promise<VmManifest> {
    const accepts = (m: VmManifest, h: bigint): boolean =>
      h === hash || (m.compacted && m.supersedesHash === hash);
    for (const kind of ["b", "e"] as const) {
      const name = partName(kind, epoch);
      const dir = join(into.dir, VMS_DIR, vmId, name);
      const local = await localPartIfWhole(dir, vmId, epoch, opts.verifyLocal ?? false);
      if (local && accepts(local.manifest, local.hash)) {
        result.partsReused.push(`${vmId}/${name}`);
        return local.manifest;
      }
    }
    for (const kind of ["b", "e"] as const) {
      const key = partKey(this.#prefix, vmId, partName(kind, epoch), "manifest");
      const bytes = await this.#getIfExists(key);
      if (bytes === undefined) continue;
      const manifest = decodeVmManifest(bytes, { path: this.url(key), vmId, epoch });
      if (manifest.vmId !== vmId || manifest.epoch !== epoch) {
        throw new StoreCorruptionError(
          "binding",
          `${this.url(key)}: names ${manifest.vmId} epoch ${manifest.epoch}`,
          {
            path: this.url(key),
            offset: 16,
            vmId,
            epoch,
          },
        );
      }
      if (!accepts(manifest, hash64(bytes))) continue;
      await this.#downloadPart(into, vmId, kind, epoch, bytes, manifest, result);
      return manifest;
    }
    throw new StoreChainError(
      `${vmId} epoch ${restoring}: no part of epoch ${epoch} matching ${hex(hash)} at ${this.url(partKey(this.#prefix, vmId, partName("e", epoch), "manifest"))}`,
      { vmId, epoch: restoring, missingEpoch: epoch },
    );
  }

  async #downloadPart(
    into: CheckpointStore,
    vmId: string,
    kind: PartKind,
    epoch: number,
    manifestBytes: Buffer,
    manifest: VmManifest,
    result: FetchResult,
  ): Promise<void> {
    const name = partName(kind, epoch);
    const vmDir = join(into.dir, VMS_DIR, vmId);
    await io("mkdir", vmDir, () => mkdir(vmDir, { recursive: true }));
    const tmp = join(vmDir, tempName(`fetch-${name}`));
    await io("mkdir", tmp, () => mkdir(tmp));
    try {
      for (const f of manifest.files) {
        const key = partKey(this.#prefix, vmId, name, f.name);
        await this.#download(key, join(tmp, f.name), f.bytes, f.hash, { path: this.url(key), vmId, epoch });
        result.bytesFetched += f.bytes;
      }
      await writeWhole(join(tmp, "manifest"), manifestBytes, true);
      result.bytesFetched += manifestBytes.length;
      await fsyncDir(tmp);
      const final = join(vmDir, name);
      // A part that failed the checks before (a damaged local copy) makes way for the fetched one.
      await removeTree(final, join(vmDir, tempName(`replaced-${name}`)));
      await publish(tmp, final, vmDir, true);
      result.partsFetched.push(`${vmId}/${name}`);
    } catch (e) {
      await removeTree(tmp, join(vmDir, tempName("failed-fetch"))).catch(() => undefined);
      throw e;
    }
  }

  /** Streams one object to `path`, hashing as it goes; refuses it on a length or hash mismatch. */
  async #download(key: string, path: string, bytes: number, hash: bigint, ctx: Ctx): Promise<void> {
    const body = await this.#s3(
      "GET",
      this.url(key),
      () => this.#client.getObject(this.location.bucket, key),
      ctx,
    );
    const h = new Xxh64();
    let got = 0;
    const fh = await io("open", path, () => open(path, "wx"));
    try {
      for await (const chunk of body as Readable) {
        const b = chunk as Buffer;
        if (got + b.length > bytes) {
          body.destroy();
          throw corrupt("length", `object is longer than the ${bytes} bytes its manifest says`, ctx, bytes);
        }
        h.update(b);
        await writeAll(fh, b, got, path);
        got += b.length;
      }
      if (got < bytes)
        throw corrupt("truncated", `object is ${got} bytes, its manifest says ${bytes}`, ctx, got);
      if (h.digest() !== hash) throw corrupt("checksum", "object checksum differs from its manifest", ctx, 0);
      await io("fsync", path, () => fh.sync());
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  async #readGlobal(epoch: number): Promise<{ manifest: GlobalManifest; bytes: Buffer }> {
    const key = globalKey(this.#prefix, epoch);
    const bytes = await this.#getIfExists(key);
    if (bytes === undefined) {
      throw new StoreNotFoundError(`epoch ${epoch} is not committed at ${this.url(key)}`, {
        epoch,
        path: this.url(key),
      });
    }
    const manifest = decodeGlobalManifest(bytes, { path: this.url(key), epoch });
    if (manifest.epoch !== epoch) {
      throw new StoreCorruptionError("binding", `${this.url(key)}: names epoch ${manifest.epoch}`, {
        path: this.url(key),
        offset: 16,
        epoch,
      });
    }
    return { manifest, bytes };
  }

  // ------------------------------------------------------------------ S3 calls

  /**
   * PUT that never replaces: `If-None-Match: *`. When the name is taken, the same bytes (same length
   * and XXH64, kept as object metadata) count as done — a push resumed after a crash — and other
   * bytes are refused, naming the object. True when this call stored the object.
   */
  async #putOnce(key: string, bytes: Buffer, what: "object" | "commit" = "object"): Promise<boolean> {
    const hash = hex(hash64(bytes));
    const meta = { [`x-amz-meta-${HASH_META}`]: hash };
    let headers: Record<string, string> = { "If-None-Match": "*", ...meta };
    if (bytes.length > this.#singlePutMax) {
      // A multipart upload: the condition would belong on its completion, which the client does not
      // send it with; a HEAD first keeps a resumed push from uploading what is already there.
      if (await this.#statIfExists(key)) {
        await this.#sameOrRefuse(key, bytes.length, hash, what);
        return false;
      }
      headers = meta;
    }
    try {
      await this.#s3("PUT", this.url(key), () =>
        this.#client.putObject(this.location.bucket, key, bytes, bytes.length, headers),
      );
      return true;
    } catch (e) {
      if (!(StoreError.isInstance(e) && s3Code(e.cause) === "PreconditionFailed")) throw e;
      await this.#sameOrRefuse(key, bytes.length, hash, what);
      return false;
    }
  }

  async #sameOrRefuse(key: string, length: number, hash: string, what: "object" | "commit"): Promise<void> {
    const there = await this.#statIfExists(key);
    if (there && there.size === length && there.hash === hash) return;
    const which =
      what === "commit"
        ? "the epoch was committed by another writer"
        : "another writer stored different bytes";
    throw new StoreStateError(`${this.url(key)} exists: ${which}`, {
      op: "push",
      path: this.url(key),
      state: `exists (${there?.size ?? "?"} bytes, ${there?.hash ?? "no hash"})`,
      required: `absent or ${length} bytes with XXH64 ${hash}`,
    });
  }

  async #statIfExists(key: string): Promise<{ size: number; hash: string | undefined } | undefined> {
    try {
      const st = await this.#client.statObject(this.location.bucket, key);
      const meta = st.metaData as Record<string, string | undefined>;
      return { size: st.size, hash: meta[HASH_META] ?? meta[`x-amz-meta-${HASH_META}`] };
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw s3Error("HEAD", this.url(key), e);
    }
  }

  async #get(key: string): Promise<Buffer> {
    const body = await this.#s3("GET", this.url(key), () =>
      this.#client.getObject(this.location.bucket, key),
    );
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  async #getIfExists(key: string): Promise<Buffer | undefined> {
    try {
      return await this.#get(key);
    } catch (e) {
      if (StoreError.isInstance(e) && isMissing(e.cause)) return undefined;
      throw e;
    }
  }

  /** Runs one S3 call; a missing object under `ctx` is a corrupt store, anything else an IO error. */
  async #s3<T>(op: string, url: string, fn: () => Promise<T>, ctx?: Ctx): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (ctx && isMissing(e)) throw corrupt("truncated", "object is missing", ctx, 0);
      throw s3Error(op, url, e);
    }
  }
}

/** Runs `fn` over `items`, at most `limit` at a time; waits for all, then throws the first failure. */
async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const failures: unknown[] = [];
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item).catch((e: unknown) => {
        failures.push(e);
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failures.length > 0) throw failures[0];
}

function parseEndpoint(endpoint: string): URL {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new StoreArgumentError(
      `S3 endpoint ${JSON.stringify(endpoint)} is not a URL (use http://host:port)`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new StoreArgumentError(`S3 endpoint ${endpoint}: use http:// or https://`);
  }
  return url;
}

function s3Error(op: string, url: string, cause: unknown): StoreIoError {
  const code = s3Code(cause) ?? "unknown";
  return new StoreIoError(`S3 ${op} ${url} failed: ${code} ${(cause as S3Failure)?.message ?? ""}`.trim(), {
    op: `s3 ${op}`,
    path: url,
    cause,
  });
}

/** Reads one file of a committed local part and checks it against the part's manifest before upload. */
async function readCheckedFile(dir: string, name: PartFileName, manifest: VmManifest): Promise<Buffer> {
  const path = join(dir, name);
  const ref = manifest.files.find((f) => f.name === name)!;
  const bytes = await io("read", path, () => readFile(path));
  const ctx = { path, vmId: manifest.vmId, epoch: manifest.epoch };
  if (bytes.length !== ref.bytes) {
    throw corrupt(
      "length",
      `file is ${bytes.length} bytes, manifest says ${ref.bytes}`,
      ctx,
      Math.min(bytes.length, ref.bytes),
    );
  }
  if (hash64(bytes) !== ref.hash)
    throw corrupt("checksum", "file checksum differs from the manifest", ctx, 0);
  return bytes;
}

/** A local part whose manifest decodes and whose files have the lengths (and, if asked, hashes) it lists. */
async function localPartIfWhole(
  dir: string,
  vmId: string,
  epoch: number,
  verify: boolean,
): Promise<{ manifest: VmManifest; hash: bigint } | undefined> {
  const bytes = await readIfExists(join(dir, "manifest"));
  if (bytes === undefined) return undefined;
  try {
    const manifest = decodeVmManifest(bytes, { path: join(dir, "manifest"), vmId, epoch });
    if (manifest.vmId !== vmId || manifest.epoch !== epoch) return undefined;
    for (const f of manifest.files) {
      const path = join(dir, f.name);
      if (verify) {
        const data = await readFile(path);
        if (data.length !== f.bytes || hash64(data) !== f.hash) return undefined;
      } else if ((await stat(path)).size !== f.bytes) return undefined;
    }
    return { manifest, hash: hash64(bytes) };
  } catch {
    // Damaged or half-present: fetched again.
    return undefined;
  }
}
