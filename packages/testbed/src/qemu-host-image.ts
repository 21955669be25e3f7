/** Locating and reading the L1 host image built by images/host/build.sh. */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { defaultGuestImageDir, type GuestImage, GuestImageError } from "@vpc/controller";

/**
 * A host image is booted by `Vm` like a guest image (same kernel/initrd/key/marker fields),
 * plus the kernel's module tree that the L1 bind-mounts for modprobe.
 */
export interface HostImage extends GuestImage {
  /** Directory holding `lib/modules/<kernelRelease>`. */
  readonly modulesDir: string;
  /** Line the L1's init prints on the serial console when it cannot boot. */
  readonly failMarker: string;
}

const HOST_IMAGE_FORMAT = "vpc-host-image/1";

/**
 * The image directory: `$VPC_HOST_IMAGE` if set, else `host` next to the guest image directory
 * (`build/images/host` of the checkout, found as `defaultGuestImageDir()` finds the guest's).
 */
export function defaultHostImageDir(): string {
  const env = process.env.VPC_HOST_IMAGE;
  return env ? resolve(env) : join(dirname(defaultGuestImageDir()), "host");
}

/** Reads `manifest.json` of a built host image and checks that its files exist. */
export async function loadHostImage(dir: string = defaultHostImageDir()): Promise<HostImage> {
  const rebuild = "build it with `bash images/host/build.sh build/images/host`";
  let manifest: Record<string, unknown>;
  try {
    manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as Record<string, unknown>;
  } catch (cause) {
    throw new GuestImageError(dir, `host image: no readable manifest.json; ${rebuild}`, cause);
  }
  if (manifest.format !== HOST_IMAGE_FORMAT)
    throw new GuestImageError(
      dir,
      `host image: format is ${String(manifest.format)}, not ${HOST_IMAGE_FORMAT}`,
    );
  const str = (key: string): string => {
    const v = manifest[key];
    if (typeof v !== "string" || v.length === 0)
      throw new GuestImageError(dir, `host image: manifest.json lacks "${key}"`);
    return v;
  };
  const image: HostImage = {
    dir: resolve(dir),
    kernel: resolve(dir, str("kernel")),
    initrd: resolve(dir, str("initrd")),
    clientKey: resolve(dir, str("clientKey")),
    readyMarker: str("readyMarker"),
    failMarker: str("failMarker"),
    kernelRelease: str("kernelRelease"),
    modulesDir: resolve(dir, str("modules")),
    programs: [],
    mpi: false,
    npb: [],
  };
  for (const path of [image.kernel, image.initrd, image.clientKey, image.modulesDir]) {
    if (!existsSync(path)) throw new GuestImageError(dir, `host image: missing ${path}; ${rebuild}`);
  }
  return image;
}
