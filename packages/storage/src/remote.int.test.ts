/**
 * The remote store against a real object store: a one-node Ceph cluster with radosgw started by
 * scripts/store.sh (mon + OSD + RGW on 127.0.0.1, ~25 s on 2 cores) and removed afterwards. With
 * VPC_S3_ENDPOINT (and VPC_S3_ACCESS_KEY, VPC_S3_SECRET_KEY) set, an existing S3 endpoint is used instead.
 * Every test works in its own bucket.
 */
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, open, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Client } from "minio";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StoreError } from "./errors.js";
import { type S3Location, S3Store } from "./remote.js";
import { Replicator, restoreNearest } from "./replicate.js";
import { CheckpointStore } from "./store.js";

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const storeScript = join(here, "..", "..", "..", "scripts", "store.sh");
const pushChild = join(here, "..", "test-fixtures", "push-child.mjs");
const PS = 4096;
const PAGES = 512; // 2 MiB guests: big enough for several blocks, small enough for a slow RGW

let root: string;
let cephDir: string | undefined;
let endpoint: { endpoint: string; accessKey: string; secretKey: string; region: string };
let admin: Client;
let bucketSeq = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "vpc-remote-test-"));
  const env = process.env;
  if (env.VPC_S3_ENDPOINT) {
    endpoint = {
      endpoint: env.VPC_S3_ENDPOINT,
      accessKey: env.VPC_S3_ACCESS_KEY ?? "",
      secretKey: env.VPC_S3_SECRET_KEY ?? "",
      region: env.VPC_S3_REGION ?? "default",
    };
  } else {
    cephDir = join(root, "ceph");
    const up = await run("bash", [storeScript, "up"], {
      env: { ...env, STORE_DIR: cephDir, STORE_OSD: env.STORE_OSD ?? "memstore", STORE_BLOCK_GIB: "1" },
    }).catch((e: { stderr?: string; message: string }) => {
      throw new Error(`scripts/store.sh up failed (run 'scripts/store.sh doctor'): ${e.stderr ?? e.message}`);
    });
    const vars = Object.fromEntries(
      up.stdout
        .trim()
        .split("\n")
        .map((l) => l.split("=") as [string, string]),
    );
    endpoint = {
      endpoint: vars.VPC_S3_ENDPOINT!,
      accessKey: vars.VPC_S3_ACCESS_KEY!,
      secretKey: vars.VPC_S3_SECRET_KEY!,
      region: vars.VPC_S3_REGION!,
    };
  }
  const u = new URL(endpoint.endpoint);
  admin = new Client({
    endPoint: u.hostname,
    port: Number(u.port),
    useSSL: false,
    accessKey: endpoint.accessKey,
    secretKey: endpoint.secretKey,
    region: endpoint.region,
    pathStyle: true,
  });
}, 240_000);

afterAll(async () => {
  if (cephDir) await run("bash", [storeScript, "down"], { env: { ...process.env, STORE_DIR: cephDir } });
  await rm(root, { recursive: true, force: true });
}, 60_000);

const location = (prefix = "store/"): S3Location => ({
  ...endpoint,
  bucket: `vpc-test-${process.pid}-${bucketSeq++}`,
  prefix,
});

let storeSeq = 0;
const localStore = () =>
  CheckpointStore.open(join(root, `local-${storeSeq++}`), { create: true, compression: "lz4" });

/**
 * Writes n epochs of `vmIds` (a full image, then increments) and returns each VM's RAM per epoch.
 * With `rams` from an earlier call, goes on from there: increments of the next epochs.
 */
async function writeEpochs(
  store: CheckpointStore,
  vmIds: string[],
  n: number,
  rams = new Map<string, Buffer[]>(vmIds.map((v) => [v, []])),
): Promise<Map<string, Buffer[]>> {
  const first = rams.get(vmIds[0]!)!.length;
  for (let e = first; e < first + n; e++) {
    for (const vmId of vmIds) {
      const history = rams.get(vmId)!;
      const full = e === 0;
      const ram = full ? randomBytes(PAGES * PS) : Buffer.from(history.at(-1)!);
      if (full) ram.fill(0, 100 * PS, 200 * PS); // zero pages: stored as index entries only
      const w = await store.beginEpoch(vmId, e, { guestRamBytes: ram.length, full });
      if (full) await w.writeRange(ram, 0, PAGES);
      else {
        const pages = Uint32Array.from({ length: 40 }, (_, i) => (i * 13 + e * 7) % PAGES);
        const data = randomBytes(pages.length * PS);
        pages.forEach((p, i) => {
          data.copy(ram, p * PS, i * PS, (i + 1) * PS);
        });
        await w.writePages(pages, data);
      }
      w.setDeviceState(Buffer.from(`device state ${vmId} ${e}`));
      await w.commit();
      history.push(ram);
    }
    await store.commitGlobal(e, vmIds);
  }
  return rams;
}

async function errorOf(p: Promise<unknown>): Promise<StoreError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(StoreError.isInstance(e), `expected a StoreError, got ${String(e)}`).toBe(true);
  return e as StoreError;
}

async function restoredRam(store: CheckpointStore, vmId: string, epoch: number): Promise<Buffer> {
  const path = join(root, `ram-${storeSeq++}`);
  await store.restoreRam(vmId, epoch, path);
  return readFile(path);
}

describe("S3Store on radosgw", () => {
  it("pushes an epoch chain, uploads only new parts, and fetches it back byte for byte", async () => {
    const local = await localStore();
    const rams = await writeEpochs(local, ["vm1", "vm2"], 3);
    const remote = await S3Store.open(location(), { create: true });
    const pushes = [];
    for (const e of [0, 1, 2]) pushes.push(await remote.push(local, e));
    expect(pushes.map((p) => p.partsUploaded)).toEqual([
      ["vm1/e0000000000000000", "vm2/e0000000000000000"],
      ["vm1/e0000000000000001", "vm2/e0000000000000001"],
      ["vm1/e0000000000000002", "vm2/e0000000000000002"],
    ]);
    expect(await remote.listEpochs()).toEqual([0, 1, 2]);
    const again = await remote.push(local, 2);
    expect(again.alreadyCommitted).toBe(true);
    expect(again.objectsUploaded).toBe(0);

    const elsewhere = await localStore();
    const f = await remote.fetch(2, elsewhere);
    expect(f.partsFetched.sort()).toEqual([
      "vm1/e0000000000000000",
      "vm1/e0000000000000001",
      "vm1/e0000000000000002",
      "vm2/e0000000000000000",
      "vm2/e0000000000000001",
      "vm2/e0000000000000002",
    ]);
    for (const vmId of ["vm1", "vm2"]) {
      expect((await restoredRam(elsewhere, vmId, 2)).equals(rams.get(vmId)![2]!)).toBe(true);
      expect(String(await elsewhere.readDeviceState(vmId, 2))).toBe(`device state ${vmId} 2`);
    }
    await elsewhere.verify(2);
    // Epoch 1 shares its parts with the chain already fetched: only its global manifest is new.
    const f1 = await remote.fetch(1, elsewhere);
    expect(f1.partsFetched).toEqual([]);
    expect((await restoredRam(elsewhere, "vm1", 1)).equals(rams.get("vm1")![1]!)).toBe(true);
    await Promise.all([local.close(), elsewhere.close()]);
  });

  it("after a local compaction, pushes the new base and fetches chains that go through it", async () => {
    const local = await localStore();
    const rams = await writeEpochs(local, ["vm1"], 3);
    const remote = await S3Store.open(location(), { create: true });
    for (const e of [0, 1, 2]) await remote.push(local, e);
    await local.compact(2); // b2 replaces e0..e2 locally; the remote keeps them
    await writeEpochs(local, ["vm1"], 1, rams);
    const pushed = await remote.push(local, 3);
    expect(pushed.partsUploaded).toEqual(["vm1/b0000000000000002", "vm1/e0000000000000003"]);
    const reader = await localStore();
    const f = await remote.fetch(3, reader);
    expect(f.partsFetched).toEqual(["vm1/e0000000000000003", "vm1/b0000000000000002"]);
    expect((await restoredRam(reader, "vm1", 3)).equals(rams.get("vm1")![3]!)).toBe(true);
    // Epoch 1, gone locally, is still whole remotely.
    await remote.fetch(1, reader);
    expect((await restoredRam(reader, "vm1", 1)).equals(rams.get("vm1")![1]!)).toBe(true);
    await Promise.all([local.close(), reader.close()]);
  });

  it("an interrupted push is invisible, and pushing again completes it", async () => {
    const local = await localStore();
    const rams = await writeEpochs(local, ["vm1"], 2);
    const remote = await S3Store.open(location(), { create: true });
    await remote.push(local, 0);
    let stored = 0;
    const stopAfterPages = {
      afterObject: (key: string) => {
        stored++;
        if (key.endsWith("/pages")) throw new Error("simulated crash after the pages object");
      },
    };
    await expect(remote.push(local, 1, stopAfterPages)).rejects.toThrow("simulated crash");
    expect(stored).toBe(2); // index, pages
    expect(await remote.listEpochs()).toEqual([0]);
    const reader = await localStore();
    expect((await errorOf(remote.fetch(1, reader))).code).toBe("NOT_FOUND");
    const resumed = await remote.push(local, 1);
    expect(resumed.partsUploaded).toEqual(["vm1/e0000000000000001"]);
    expect(await remote.listEpochs()).toEqual([0, 1]);
    await remote.fetch(1, reader);
    expect((await restoredRam(reader, "vm1", 1)).equals(rams.get("vm1")![1]!)).toBe(true);
    await Promise.all([local.close(), reader.close()]);
  });

  it("a pushing process killed mid-upload leaves nothing visible; the next push completes the epoch", async () => {
    const local = await CheckpointStore.open(join(root, `local-${storeSeq++}`), { create: true });
    const ram = randomBytes(24 << 20); // the pages object takes a while to go up: the kill lands in its PUT
    const w = await local.beginEpoch("vm1", 0, { guestRamBytes: ram.length, full: true });
    await w.writeRange(ram, 0, ram.length / PS);
    await w.commit();
    await local.commitGlobal(0, ["vm1"]);
    const loc = location();
    const remote = await S3Store.open(loc, { create: true });
    const stored = await new Promise<string[]>((resolve, reject) => {
      const child = spawn(process.execPath, [pushChild, local.dir, "0", JSON.stringify(loc)], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      const keys: string[] = [];
      let err = "";
      child.stderr.on("data", (d: Buffer) => {
        err += String(d);
      });
      child.stdout.on("data", (d: Buffer) => {
        for (const line of String(d).split("\n")) {
          if (line.startsWith("object ")) keys.push(line.slice(7));
          if (line.endsWith("/index")) child.kill("SIGKILL"); // the pages PUT is next
        }
      });
      child.on("exit", (code, signal) =>
        signal === "SIGKILL" ? resolve(keys) : reject(new Error(`push child exited ${code}: ${err}`)),
      );
    });
    expect(stored).toEqual(["store/vms/vm1/e0000000000000000/index"]);
    expect(await remote.listEpochs()).toEqual([]);
    const reader = await localStore();
    expect((await errorOf(remote.fetch(0, reader))).code).toBe("NOT_FOUND");
    const resumed = await remote.push(local, 0);
    expect(resumed.partsUploaded).toEqual(["vm1/e0000000000000000"]);
    await remote.fetch(0, reader);
    expect((await restoredRam(reader, "vm1", 0)).equals(ram)).toBe(true);
    await Promise.all([local.close(), reader.close()]);
  });

  it("refuses a corrupt object, naming it, and publishes nothing of the epoch", async () => {
    const local = await localStore();
    await writeEpochs(local, ["vm1"], 2);
    const loc = location("c/");
    const remote = await S3Store.open(loc, { create: true });
    await remote.push(local, 0);
    await remote.push(local, 1);
    // Flip one byte of the base's pages object behind the store's back (same length).
    const key = "c/vms/vm1/e0000000000000000/pages";
    const chunks: Buffer[] = [];
    for await (const c of await admin.getObject(loc.bucket, key)) chunks.push(c as Buffer);
    const bytes = Buffer.concat(chunks);
    bytes[bytes.length - 100]! ^= 0xff;
    await admin.putObject(loc.bucket, key, bytes, bytes.length);

    const reader = await localStore();
    const e = await errorOf(remote.fetch(1, reader));
    expect(e.code).toBe("CORRUPT");
    expect(e.path).toBe(`s3://${loc.bucket}/${key}`);
    expect(e.message).toContain(key);
    expect(await reader.listEpochs()).toEqual([]);
    expect((await reader.info()).vms.flatMap((v) => v.parts)).toEqual([
      expect.objectContaining({ name: "e0000000000000001" }),
    ]);
    await Promise.all([local.close(), reader.close()]);
  });

  it("refuses a concurrent commit of the same epoch by another writer", async () => {
    const a = await localStore();
    const b = await localStore();
    const ramsA = await writeEpochs(a, ["vm1"], 1);
    const ramsB = await writeEpochs(b, ["vm1"], 1);
    const loc = location();
    const [ra, rb] = await Promise.all([
      S3Store.open(loc, { create: true }),
      S3Store.open(loc, { create: true }),
    ]);
    const outcomes = await Promise.allSettled([ra.push(a, 0), rb.push(b, 0)]);
    const won = outcomes.filter((o) => o.status === "fulfilled");
    const lost = outcomes.filter((o): o is PromiseRejectedResult => o.status === "rejected");
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(StoreError.isInstance(lost[0]!.reason) && lost[0]!.reason.code).toBe("STATE");
    expect(String(lost[0]!.reason.message)).toMatch(/exists: /);
    // Different VMs committing the same epoch: the epoch manifest is the single commit point.
    const c = await localStore();
    await writeEpochs(c, ["vm9"], 2);
    const e = await errorOf(ra.push(c, 0));
    expect(e.code).toBe("STATE");
    expect(e.message).toContain("the epoch was committed by another writer");
    // What is there is the winner's epoch, whole.
    const reader = await localStore();
    await ra.fetch(0, reader);
    const winner = outcomes[0]!.status === "fulfilled" ? ramsA : ramsB;
    expect((await restoredRam(reader, "vm1", 0)).equals(winner.get("vm1")![0]!)).toBe(true);
    await reader.verify(0);
    await Promise.all([a.close(), b.close(), c.close(), reader.close()]);
  });

  it("replicates after commit and restores from the nearest complete copy", async () => {
    const local = await localStore();
    const remote = await S3Store.open(location(), { create: true });
    const replicator = new Replicator(local, remote);
    const t0 = performance.now();
    const rams = await writeEpochs(local, ["vm1"], 3);
    const results = await Promise.all([0, 1, 2].map((e) => replicator.replicate(e, t0)));
    expect(results.map((r) => r.epoch)).toEqual([0, 1, 2]);
    for (const r of results) expect(Number.isFinite(r.durableMs) && r.durableMs > 0).toBe(true);
    expect(replicator.pending).toBe(0);

    const fromLocal = await restoreNearest("vm1", 2, join(root, "near-1"), { local, remotes: [remote] });
    expect(fromLocal.source).toBe("local");
    // Damage the local copy of epoch 1's part: the restore falls back to the remote and repairs it.
    const part = (await local.describeChain("vm1", 2))[1]!;
    const fh = await open(join(part.dir, "pages"), "r+");
    await fh.write(Buffer.from([0xde, 0xad]), 0, 2, 64);
    await fh.close();
    const near = await restoreNearest("vm1", 2, join(root, "near-2"), { local, remotes: [remote] });
    expect(near.source).toBe(remote.url("store/"));
    expect(near.skipped.map((s) => s.source)).toEqual(["local"]);
    expect(near.fetch?.partsFetched).toEqual(["vm1/e0000000000000001"]);
    expect((await readFile(join(root, "near-2"))).equals(rams.get("vm1")![2]!)).toBe(true);
    await local.verify(2);
    await local.close();
  });

  it("uploads files above singlePutMaxBytes as multipart uploads that a fetch checks like any other", async () => {
    const local = await CheckpointStore.open(join(root, `local-${storeSeq++}`), { create: true });
    const big = randomBytes(6 << 20); // a pages file above the 5 MiB single-PUT limit set below
    const w = await local.beginEpoch("vm1", 0, { guestRamBytes: big.length, full: true });
    await w.writeRange(big, 0, big.length / PS);
    await w.commit();
    await local.commitGlobal(0, ["vm1"]);
    const loc = location();
    const remote = await S3Store.open(loc, { create: true, singlePutMaxBytes: 5 << 20 });
    const crash = {
      afterObject: (key: string) => {
        if (key.endsWith("/pages")) throw new Error("simulated crash after the pages object");
      },
    };
    await expect(remote.push(local, 0, crash)).rejects.toThrow("simulated crash");
    const st = await admin.statObject(loc.bucket, "store/vms/vm1/e0000000000000000/pages");
    expect(st.etag).toMatch(/-\d+$/); // a multipart upload's ETag ends in -<parts>
    // The resumed push finds the big object (same length and hash) and does not send it again.
    const resumed = await remote.push(local, 0);
    expect(resumed.partsUploaded).toEqual(["vm1/e0000000000000000"]);
    expect(resumed.bytesUploaded).toBeLessThan(big.length);
    const reader = await localStore();
    await remote.fetch(0, reader);
    expect((await restoredRam(reader, "vm1", 0)).equals(big)).toBe(true);
    await Promise.all([local.close(), reader.close()]);
  });

  it("names a missing bucket and a store that does not exist", async () => {
    const loc = location();
    expect((await errorOf(S3Store.open(loc))).code).toBe("NOT_FOUND");
    await admin.makeBucket(loc.bucket, endpoint.region);
    const e = await errorOf(S3Store.open(loc));
    expect(e.code).toBe("NOT_FOUND");
    expect(e.message).toContain(`s3://${loc.bucket}/store/STORE`);
  });
});
