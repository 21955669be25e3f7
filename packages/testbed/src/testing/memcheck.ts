/**
 * Helpers shared by the integration tests that run vpc-memcheck (the guest image's program
 * that verifies its own memory) and wait for it. Not part of the package's API.
 */

export interface Memcheck {
  readonly verifies: number;
  readonly failures: number;
  readonly nonce: string;
}

/** Reads the status line of /run/vpc-memcheck. */
export function parseMemcheck(line: string): Memcheck {
  const m = /verifies=(\d+) failures=(\d+) nonce=([0-9a-f]+)/.exec(line);
  if (!m) throw new Error(`bad memcheck status: ${line}`);
  return { verifies: Number(m[1]), failures: Number(m[2]), nonce: m[3]! };
}

/** Polls `f` every `everyMs` until `ok` holds (a throwing `f` counts as not yet) or `ms` pass. */
export async function waitFor<T>(
  f: () => Promise<T>,
  ok: (v: T) => boolean,
  ms: number,
  everyMs = 250,
): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined && ok(v)) return v;
    if (Date.now() > until) throw new Error(`condition not met within ${ms} ms (last: ${JSON.stringify(v)})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
