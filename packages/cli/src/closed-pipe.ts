/**
 * `vpc … | head`: when the reader of stdout goes away, writes fail with EPIPE. Node reports that
 * as an unhandled 'error' event with a stack trace; vpc instead stops the VMs it started and exits
 * quietly, as a command killed by SIGPIPE would, but without the noise.
 */
import type { EventEmitter } from "node:events";
import { reapNow } from "@vpc/controller";

export function exitQuietlyOnClosedPipe(
  streams: readonly EventEmitter[],
  exit: (code: number) => void = (code) => process.exit(code),
  reap: () => void = reapNow,
): void {
  for (const stream of streams) {
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "EPIPE") throw e;
      reap();
      exit(0);
    });
  }
}
