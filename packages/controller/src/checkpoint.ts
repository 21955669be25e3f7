/**
 * Full checkpoints of one VM in a directory: a copy of the RAM file, the device state, and
 * `checkpoint.json` describing both and the VM's configuration. This is the simple, whole-RAM
 * form used by `vpc demo`; incremental epochs belong to @vpc/storage.
 *
 *   DIR/ram            raw guest RAM, byte for byte the memory-backend file
 *   DIR/device-state   QEMU migration stream with x-ignore-shared (no shared RAM)
 *   DIR/checkpoint.json  { format: "vpc-full-checkpoint/1", vm, ramBytes, deviceStateBytes, timings, createdAt }
 *
 * checkpoint.json is written last (writeFileDurable): a directory without it is incomplete.
 */
import { copyFile, mkdir, open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { CheckpointError } from "./errors.js";
import type { VmConfig } from "./internal/config.js";
import { writeFileDurable } from "./internal/durable-write.js";
import type { DeviceStateTransport, RestoreOptions, Vm } from "./vm.js";

export const CHECKPOINT_FORMAT = "vpc-full-checkpoint/1";

export interface CheckpointTimings {
  readonly deviceStateMs: number;
  readonly ramCopyMs: number;
}

export interface FullCheckpoint {
  readonly dir: string;
  readonly ramFile: string;
  readonly deviceStateFile: string;
  readonly vm: VmConfig;
  readonly ramBytes: number;
  readonly deviceStateBytes: number;
  readonly transport: DeviceStateTransport;
  readonly timings: CheckpointTimings;
  readonly createdAt: string;
}

/**
 * Saves device state and copies guest RAM into `dir`. The VM must be paused (the copy is only
 * consistent while the guest cannot write) and stays paused.
 */
export async function takeFullCheckpoint(
  vm: Vm,
  dir: string,
  options: { transport?: DeviceStateTransport } = {},
): Promise<FullCheckpoint> {
  if (vm.state !== "paused") {
    throw new CheckpointError("checkpoint", `vm must be paused (is ${vm.state})`, {
      vmId: vm.name,
      path: dir,
    });
  }
  await mkdir(dir, { recursive: true });
  const ramFile = join(dir, "ram");
  const deviceStateFile = join(dir, "device-state");
  const saved = await vm.saveDeviceState(
    deviceStateFile,
    options.transport ? { transport: options.transport } : {},
  );
  const t0 = performance.now();
  try {
    await copyFile(vm.ramPath, ramFile);
    await fsync(ramFile);
  } catch (cause) {
    throw new CheckpointError("copy-ram", "copying guest RAM failed", {
      vmId: vm.name,
      path: ramFile,
      cause,
    });
  }
  const ramCopyMs = performance.now() - t0;
  const checkpoint: FullCheckpoint = {
    dir,
    ramFile,
    deviceStateFile,
    vm: vm.config,
    ramBytes: (await stat(ramFile)).size,
    deviceStateBytes: saved.bytes,
    transport: saved.transport,
    timings: { deviceStateMs: saved.ms, ramCopyMs },
    createdAt: new Date().toISOString(),
  };
  const { dir: _d, ramFile: _r, deviceStateFile: _s, ...stored } = checkpoint;
  await writeFileDurable(
    join(dir, "checkpoint.json"),
    `${JSON.stringify({ format: CHECKPOINT_FORMAT, ...stored }, null, 2)}\n`,
  );
  return checkpoint;
}

/** Reads a checkpoint directory written by `takeFullCheckpoint`. */
export async function readFullCheckpoint(dir: string): Promise<FullCheckpoint> {
  const path = join(dir, "checkpoint.json");
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
  } catch (cause) {
    throw new CheckpointError("read-checkpoint", "missing or unreadable checkpoint.json", { path, cause });
  }
  if (parsed.format !== CHECKPOINT_FORMAT) {
    throw new CheckpointError("read-checkpoint", `unknown format ${String(parsed.format)}`, { path });
  }
  const ramFile = join(dir, "ram");
  const deviceStateFile = join(dir, "device-state");
  const ramBytes = Number(parsed.ramBytes);
  const actual = await stat(ramFile).catch((cause) => {
    throw new CheckpointError("read-checkpoint", "RAM file missing", { path: ramFile, cause });
  });
  if (actual.size !== ramBytes) {
    throw new CheckpointError("read-checkpoint", `RAM file is ${actual.size} bytes, expected ${ramBytes}`, {
      path: ramFile,
    });
  }
  return { ...(parsed as unknown as FullCheckpoint), dir, ramFile, deviceStateFile };
}

/** Restore options for `Vm.restore` from a full checkpoint. */
export function restoreOptionsFor(
  checkpoint: FullCheckpoint,
  rest: Omit<RestoreOptions, "ramFile" | "deviceStateFile" | "config"> = {},
): RestoreOptions {
  return {
    ...rest,
    ramFile: checkpoint.ramFile,
    deviceStateFile: checkpoint.deviceStateFile,
    config: checkpoint.vm,
  };
}

async function fsync(path: string): Promise<void> {
  const fh = await open(path, "r+");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
