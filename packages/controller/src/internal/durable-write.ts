/**
 * Replacing a small file so that a crash leaves the old content or the new one, never a mix or
 * nothing: a temp file beside it, fsync, rename over the target, fsync of the directory (only
 * then is the rename itself on disk). The one place this sequence lives; manifests, checkpoint
 * descriptors, state files and caches all go through it.
 */
import { randomBytes } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

export interface DurableWriteOptions {
  /** File mode of a new file (the umask applies); default 0o644. */
  readonly mode?: number;
}

export async function writeFileDurable(
  path: string,
  data: string | Uint8Array,
  options: DurableWriteOptions = {},
): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  try {
    const fh = await open(tmp, "wx", options.mode ?? 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  const dh = await open(dir, "r");
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
