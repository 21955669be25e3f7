/**
 * The cluster manifest of one global epoch: `<controllerDir>/epochs/<epoch>.json`, the commit point
 * of the epoch. Its `checksum` (SHA-256 of the JSON of every other field, in order) is checked
 * before a restore uses it, so a torn or edited manifest is refused, naming file and reason.
 */
import { createHash } from "node:crypto";
import { ClusterError } from "./errors.js";

export const CLUSTER_MANIFEST_FORMAT = "vpc-cluster-epoch/2";

export interface ClusterManifest {
  readonly format: typeof CLUSTER_MANIFEST_FORMAT;
  readonly epoch: number;
  /** The engine spec, canonical (`formatEngineSpec`). */
  readonly engine: string;
  readonly hosts: readonly { readonly hostId: string; readonly vms: readonly string[] }[];
  readonly committedAt: string;
}

function checksumOf(body: unknown): string {
  return createHash("sha256").update(JSON.stringify(body)).digest("hex");
}

/** The file's text: the manifest's fields, then `checksum`, on one line. */
export function encodeClusterManifest(m: ClusterManifest): string {
  const body = {
    format: m.format,
    epoch: m.epoch,
    engine: m.engine,
    hosts: m.hosts,
    committedAt: m.committedAt,
  };
  return `${JSON.stringify({ ...body, checksum: checksumOf(body) })}\n`;
}

/**
 * Parses and checks a manifest read from `path` for epoch `epoch`; throws RESTORE_FAILED naming
 * the file and what is wrong (not JSON, another format, checksum mismatch, another epoch).
 */
export function decodeClusterManifest(text: string, path: string, epoch: number): ClusterManifest {
  const fail = (why: string): never => {
    throw new ClusterError("RESTORE_FAILED", `cluster manifest ${path}: ${why}`, { epoch });
  };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return fail(`not JSON (${(e as Error).message})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    return fail("not a JSON object");
  const { checksum, ...body } = parsed as Record<string, unknown>;
  if (body.format !== CLUSTER_MANIFEST_FORMAT)
    return fail(`format ${JSON.stringify(body.format)}, expected ${CLUSTER_MANIFEST_FORMAT}`);
  if (typeof checksum !== "string") return fail("no checksum");
  const actual = checksumOf(body);
  if (actual !== checksum) return fail(`checksum mismatch (recorded ${checksum}, content ${actual})`);
  if (body.epoch !== epoch) return fail(`holds epoch ${String(body.epoch)}, expected ${epoch}`);
  const hosts = body.hosts;
  if (
    !Array.isArray(hosts) ||
    !hosts.every(
      (h: unknown) =>
        typeof (h as { hostId?: unknown }).hostId === "string" &&
        Array.isArray((h as { vms?: unknown }).vms) &&
        (h as { vms: unknown[] }).vms.every((v) => typeof v === "string"),
    )
  )
    return fail("hosts is not a list of { hostId, vms }");
  if (typeof body.engine !== "string" || typeof body.committedAt !== "string")
    return fail("engine or committedAt missing");
  return body as unknown as ClusterManifest;
}
