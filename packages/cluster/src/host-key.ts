/**
 * Host-key pinning of the SSH connections to hosts: OpenSSH fingerprints and the pin rule (a
 * configured fingerprint must match, else the one pinned on first use). Pure.
 */
import { createHash } from "node:crypto";
import { ClusterError } from "./errors.js";

/** OpenSSH's fingerprint of a raw public key blob: `SHA256:` + unpadded base64 of its SHA-256. */
export function hostKeyFingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash("sha256").update(keyBlob).digest("base64").replace(/=+$/, "")}`;
}

/** A SHA-256 fingerprint as `ssh-keygen -lf` prints it (43 base64 characters). */
export const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;

export type HostKeyVerdict =
  | { readonly ok: true; readonly pin: string; readonly firstUse: boolean }
  | {
      readonly ok: false;
      readonly expected: string;
      readonly seen: string;
      readonly source: "config" | "pinned";
    };

/**
 * The pin rule: a configured fingerprint must match; else a key pinned earlier must match;
 * else the seen key is trusted on first use and becomes the pin.
 */
export function verifyHostKey(
  seen: string,
  configured: string | undefined,
  pinned: string | undefined,
): HostKeyVerdict {
  if (configured !== undefined)
    return configured === seen
      ? { ok: true, pin: seen, firstUse: false }
      : { ok: false, expected: configured, seen, source: "config" };
  if (pinned !== undefined)
    return pinned === seen
      ? { ok: true, pin: seen, firstUse: false }
      : { ok: false, expected: pinned, seen, source: "pinned" };
  return { ok: true, pin: seen, firstUse: true };
}

/** The host presented another key than the configured or pinned one (op `host-key`). */
export class HostKeyError extends ClusterError {
  readonly expected: string;
  readonly seen: string;
  readonly source: "config" | "pinned";
  constructor(hostId: string, address: string, v: Extract<HostKeyVerdict, { ok: false }>) {
    super(
      "HOST_KEY",
      `host ${hostId} (${address}) presented key ${v.seen}, but ${v.source === "config" ? "the config's hostKey is" : "the key pinned on first use is"} ${v.expected}. ` +
        (v.source === "config"
          ? "Check the fingerprint (ssh-keygen -lf on the host's key) and fix hostKey."
          : "If the host was reinstalled on purpose, run `down` and `up` again to pin the new key; otherwise something answers in its place."),
      { hostId },
    );
    this.name = "HostKeyError";
    this.expected = v.expected;
    this.seen = v.seen;
    this.source = v.source;
  }
}
