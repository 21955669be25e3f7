import { execFile } from "node:child_process";
import { readlink } from "node:fs/promises";
import type { Socket } from "node:net";
import { promisify } from "node:util";
import { VnetError } from "../errors.js";

const run = promisify(execFile);

/**
 * Bytes this end of a unix stream socket has written that the peer has not read yet, as the kernel
 * accounts them (the socket's send queue: an skb stays charged to its writer until the reader
 * consumes it). Node cannot ask the kernel itself (no ioctl), so this reads the socket's inode from
 * /proc/self/fd and asks `ss` (iproute2, sock_diag) for that socket's Send-Q. The figure counts
 * buffer overhead too: only "zero" is meaningful. A socket no longer open (closed or never
 * connected) has nothing unread: 0.
 */
export async function unreadBytes(socket: Socket): Promise<number> {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (fd === undefined || fd < 0 || socket.destroyed) return 0;
  let link: string;
  try {
    link = await readlink(`/proc/self/fd/${fd}`);
  } catch {
    return 0;
  }
  const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
  if (inode === undefined) return 0;
  return parseSendQueue(await listUnixSockets(), inode) ?? 0;
}

/**
 * One `ss -xnH` run shared by every caller that asks while it is running (the ports of a host
 * flip together at a checkpoint; a spawn costs 25 ms on an idle machine, much more under load).
 * A caller that arrives while a run is in progress waits for the next one, so the answer it gets
 * was read after it asked.
 */
let running: Promise<string> | undefined;
let queued: Promise<string> | undefined;

function listUnixSockets(): Promise<string> {
  if (running === undefined) return startSs();
  queued ??= running
    .catch(() => undefined)
    .then(() => {
      queued = undefined;
      return startSs();
    });
  return queued;
}

function startSs(): Promise<string> {
  const p: Promise<string> = spawnSs().finally(() => {
    if (running === p) running = undefined;
  });
  running = p;
  return p;
}

async function spawnSs(): Promise<string> {
  try {
    return (await run("ss", ["-xnH"], { maxBuffer: 64 << 20 })).stdout;
  } catch (cause) {
    throw new VnetError("IO_ERROR", "cannot read unix socket queues with `ss` (install iproute2)", {
      op: "ss",
      cause,
    });
  }
}

/** The Send-Q of the socket with local inode `inode` in `ss -xnH` output, or undefined. */
export function parseSendQueue(ssOutput: string, inode: string): number | undefined {
  for (const line of ssOutput.split("\n")) {
    // Netid State Recv-Q Send-Q Local-Address Local-Inode Peer-Address Peer-Inode; an unnamed
    // socket's address is "*", so the inode is always the sixth field.
    const f = line.trim().split(/\s+/);
    if (f.length >= 6 && f[5] === inode) return Number(f[3]);
  }
  return undefined;
}
