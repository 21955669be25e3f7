/**
 * The peers that QEMU runs itself, full RAM every time (ARCHITECTURE.md §4):
 *  - qemu-stop: `stop`, migrate everything (RAM included) to a file, `cont`;
 *  - qemu-snapshot: the `background-snapshot` capability: QEMU pauses briefly, write-protects
 *    guest RAM with its own userfaultfd, resumes and saves RAM with its own COW.
 * The stream (RAM + devices) is stored as the epoch's device-state blob in an envelope flagged
 * "RAM included", with no pages of its own; `restoreVm` loads it with x-ignore-shared off.
 */
import { readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { saveDeviceStateTo } from "../internal/device-state.js";
import { encodeEnvelope } from "./envelope.js";
import { EngineCheckpointError } from "./errors.js";
import { type EngineSpec, formatEngineSpec } from "./spec.js";
import type { CheckpointEngine, CheckpointMetrics, EngineContext, EngineName } from "./types.js";

const now = (): bigint => process.hrtime.bigint();
const ms = (ns: bigint): number => Number(ns) / 1e6;
const MIGRATION_TIMEOUT_MS = 600_000;

export class QemuEngine implements CheckpointEngine {
  readonly name: EngineName;
  readonly spec: string;
  readonly #ctx: EngineContext;
  #count = 0;

  constructor(ctx: EngineContext, spec: EngineSpec) {
    this.name = spec.name;
    this.spec = formatEngineSpec(spec);
    this.#ctx = ctx;
  }

  async close(): Promise<void> {}

  async checkpoint(epoch: number): Promise<CheckpointMetrics> {
    const { vm, store, agent } = this.#ctx;
    const startedAt = new Date().toISOString();
    const ramBytes = vm.config.memMiB * 1024 * 1024;
    const background = this.name === "qemu-snapshot";
    const path = join(vm.runDir, `engine-stream-${epoch}`);
    let stage = "begin";
    let paused = false;
    let caps = false;
    try {
      const writer = await store.beginEpoch(vm.name, epoch, { guestRamBytes: ramBytes, full: true });
      try {
        // A range can be registered with only one userfaultfd (FIELD-NOTES §2): QEMU's own
        // write tracking needs our agent detached.
        if (background && agent?.attachment) {
          stage = "detach-agent";
          await agent.detach();
        }
        const tStart = now();
        let tStopped = tStart;
        if (!background) {
          stage = "pause";
          await vm.pause();
          paused = true;
          tStopped = now();
        }
        stage = "migrate";
        caps = true;
        await vm.qmp.migrateSetCapabilities([
          { capability: "x-ignore-shared", state: false },
          { capability: "background-snapshot", state: background },
        ]);
        await saveDeviceStateTo(vm.qmp, path, {
          transport: "unix",
          socketPath: join(vm.runDir, `engine-migrate-${epoch}.sock`),
          timeoutMs: MIGRATION_TIMEOUT_MS,
        });
        const tMigrated = now();
        const info = await vm.qmp.queryMigrate();
        await vm.qmp.migrateSetCapabilities([
          { capability: "background-snapshot", state: false },
          { capability: "x-ignore-shared", state: true },
        ]);
        caps = false;
        let contMs = 0;
        if (paused) {
          if (this.#ctx.onPaused) await this.#ctx.onPaused(epoch);
          stage = "resume";
          const t = now();
          await vm.resume();
          paused = false;
          contMs = ms(now() - t);
        }
        const tCont = now();
        stage = "save";
        const streamBytes = (await stat(path)).size;
        const stream = await readFile(path);
        await rm(path, { force: true });
        writer.setDeviceState(
          encodeEnvelope({ ramIncluded: true, meta: { engine: this.spec, vm: vm.config }, stream }),
        );
        if (this.#ctx.channelLog !== undefined) {
          stage = "channel log";
          writer.setChannelLog(await this.#ctx.channelLog(epoch));
        }
        stage = "commit";
        const commit = await writer.commit();
        if (this.#ctx.commitGlobal ?? true) await store.commitGlobal(epoch, [vm.name]);
        const tDurable = now();
        // qemu-snapshot: the guest is paused only inside QEMU; QEMU reports that downtime.
        const pauseMs = background ? Number(info.downtime ?? Number.NaN) : ms(tCont - tStart);
        const full = this.#count === 0;
        this.#count++;
        return {
          ok: true,
          vmId: vm.name,
          epoch,
          engine: this.spec,
          full,
          mode: null,
          pauseMs,
          trackingStallMs: null,
          cowStallMs: null,
          stallMs: null,
          soloDowntimeMs: pauseMs,
          intervalTrackingStallMs: null,
          trackingFaults: null,
          cowFaults: null,
          pagesDirty: ramBytes / 4096,
          pagesToSave: ramBytes / 4096,
          pagesCopiedInPause: background ? 0 : ramBytes / 4096,
          pagesProtected: background ? ramBytes / 4096 : 0,
          pagesCowCopied: 0,
          pagesSavedAfterResume: background ? ramBytes / 4096 : 0,
          liveRounds: 0,
          pagesCopiedLive: 0,
          // The whole stream passes through a host file before it is stored.
          peakStagingBytes: streamBytes,
          memoryOverhead: streamBytes / ramBytes,
          durableMs: ms(tDurable - tStart),
          checkpointBytes: commit.bytes,
          deviceStateBytes: streamBytes,
          steps: {
            stopMs: ms(tStopped - tStart),
            harvestMs: 0,
            copyMs: ms(tMigrated - tStopped),
            protectMs: 0,
            deviceStateMs: 0,
            contMs,
          },
          prediction: null,
          startedAt,
        };
      } catch (e) {
        await writer.abort().catch(() => undefined);
        throw e;
      }
    } catch (cause) {
      if (caps) {
        await vm.qmp
          .migrateSetCapabilities([
            { capability: "background-snapshot", state: false },
            { capability: "x-ignore-shared", state: true },
          ])
          .catch(() => undefined);
      }
      if (paused && vm.state === "paused") await vm.resume().catch(() => undefined);
      await rm(path, { force: true }).catch(() => undefined);
      throw new EngineCheckpointError(this.spec, epoch, stage, cause, { vmId: vm.name });
    }
  }
}
