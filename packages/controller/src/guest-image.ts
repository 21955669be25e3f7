/** Locating and reading the guest image built by images/guest/build.sh. */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { GuestImageError } from "./errors.js";

export interface GuestImage {
  readonly dir: string;
  readonly kernel: string;
  readonly initrd: string;
  /** Client private key in OpenSSH format (what ssh2 reads). */
  readonly clientKey: string;
  readonly readyMarker: string;
  readonly kernelRelease: string;
  readonly programs: readonly string[];
  readonly mpi: boolean;
  readonly npb: readonly string[];
}

const RELATIVE = join("build", "images", "guest");

/**
 * The image directory: `$VPC_GUEST_IMAGE` if set, else `build/images/guest` in the first
 * ancestor of the working directory or of this package that has one.
 */
export function defaultGuestImageDir(): string {
  const env = process.env.VPC_GUEST_IMAGE;
  if (env) return resolve(env);
  for (const start of [process.cwd(), dirname(fileURLToPath(import.meta.url))]) {
    for (let dir = start; ; dir = dirname(dir)) {
      if (existsSync(join(dir, RELATIVE, "manifest.json"))) return join(dir, RELATIVE);
      if (dirname(dir) === dir) break;
    }
  }
  return resolve(RELATIVE);
}

/** Reads `manifest.json` of a built image and checks that its files exist. */
export async function loadGuestImage(dir: string = defaultGuestImageDir()): Promise<GuestImage> {
  const manifestPath = join(dir, "manifest.json");
  let manifest: Record<string, unknown>;
  try {
    manifest = JSON.parse(await readFile(manifestPath, "utf8")) as Record<string, unknown>;
  } catch (cause) {
    throw new GuestImageError(dir, "no readable manifest.json; build it with `make guest`", cause);
  }
  const str = (key: string): string => {
    const v = manifest[key];
    if (typeof v !== "string" || v.length === 0)
      throw new GuestImageError(dir, `manifest.json lacks "${key}"`);
    return v;
  };
  const list = (key: string): string[] => {
    const v = manifest[key];
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  };
  const image: GuestImage = {
    dir: resolve(dir),
    kernel: resolve(dir, str("kernel")),
    initrd: resolve(dir, str("initrd")),
    clientKey: resolve(dir, str("clientKey")),
    readyMarker: str("readyMarker"),
    kernelRelease: str("kernelRelease"),
    programs: list("programs"),
    mpi: manifest.mpi === true,
    npb: list("npb"),
  };
  for (const path of [image.kernel, image.initrd, image.clientKey]) {
    if (!existsSync(path)) throw new GuestImageError(dir, `missing ${path}; rebuild with \`make guest\``);
  }
  return image;
}
