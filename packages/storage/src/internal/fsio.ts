/** Filesystem calls wrapped so that every failure is a StoreIoError naming its op and path. */
import { constants, type FileHandle, open, readFile, rename, rm, unlink } from "node:fs/promises";
import { StoreIoError } from "../errors.js";

export async function io<T>(op: string, path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (cause) {
    if (cause instanceof StoreIoError) throw cause;
    const code = (cause as { code?: string }).code ?? "unknown";
    throw new StoreIoError(`${op} ${path} failed: ${code}`, { op, path, cause });
  }
}

export const isEnoent = (e: unknown): boolean => (e as { code?: unknown } | undefined)?.code === "ENOENT";

/** Reads a whole file; undefined when it does not exist. */
export async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (e) {
    if (isEnoent(e)) return undefined;
    throw new StoreIoError(`read ${path} failed`, { op: "read", path, cause: e });
  }
}

export async function fsyncDir(path: string): Promise<void> {
  await io("fsync-dir", path, async () => {
    const fh = await open(path, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  });
}

/** Writes a file completely, fsyncs it when asked, and closes it. */
export async function writeWhole(path: string, data: Uint8Array, fsync: boolean): Promise<void> {
  await io("write", path, async () => {
    const fh = await open(path, "wx");
    try {
      await writeAll(fh, data, 0, path);
      if (fsync) await fh.sync();
    } finally {
      await fh.close();
    }
  });
}

export async function writeAll(
  fh: FileHandle,
  data: Uint8Array,
  position: number,
  path: string,
): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    if (bytesWritten <= 0) throw new StoreIoError(`short write to ${path}`, { op: "write", path });
    done += bytesWritten;
  }
}

/** Atomic publish: rename into place, then make the rename durable. */
export async function publish(from: string, to: string, dir: string, fsync: boolean): Promise<void> {
  await io("rename", from, () => rename(from, to));
  if (fsync) await fsyncDir(dir);
}

/** Removes a tree so that a crash half-way never leaves a half-deleted committed name behind:
 * the tree is first renamed to a temp name (atomic), then deleted. */
export async function removeTree(path: string, tempPath: string): Promise<void> {
  try {
    await rename(path, tempPath);
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT") return;
    throw new StoreIoError(`rename ${path} failed`, { op: "rename", path, cause: e });
  }
  await io("rm", tempPath, () => rm(tempPath, { recursive: true, force: true }));
}

export async function unlinkIfExists(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (e) {
    if ((e as { code?: string }).code !== "ENOENT") {
      throw new StoreIoError(`unlink ${path} failed`, { op: "unlink", path, cause: e });
    }
  }
}
