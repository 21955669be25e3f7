/**
 * The status file of the guest program vpc-udpcheck (images/guest/programs/vpc-udpcheck.c), parsed:
 * a totals line, one line per received flow, one per peer it sends to.
 */
export interface UdpCheckCounts {
  received: number;
  lost: number;
  duplicated: number;
  reordered: number;
  stale: number;
  restarts: number;
}

export interface UdpCheckStatus extends UdpCheckCounts {
  sent: number;
  skipped: number;
  flows: (UdpCheckCounts & { addr: string; first: number; highest: number })[];
  peers: { addr: string; sent: number }[];
}

function fields(line: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const kv of line.trim().split(/\s+/)) {
    const i = kv.indexOf("=");
    if (i > 0) m.set(kv.slice(0, i), kv.slice(i + 1));
  }
  return m;
}

function num(m: Map<string, string>, key: string, line: string): number {
  const v = m.get(key);
  if (v === undefined || !/^\d+$/.test(v)) throw new Error(`vpc-udpcheck status: no ${key}= in "${line}"`);
  return Number(v);
}

function counts(m: Map<string, string>, line: string): UdpCheckCounts {
  return {
    received: num(m, "received", line),
    lost: num(m, "lost", line),
    duplicated: num(m, "duplicated", line),
    reordered: num(m, "reordered", line),
    stale: num(m, "stale", line),
    restarts: num(m, "restarts", line),
  };
}

export function parseUdpCheckStatus(text: string): UdpCheckStatus {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const head = lines[0];
  if (head === undefined) throw new Error("vpc-udpcheck status is empty");
  const h = fields(head);
  const status: UdpCheckStatus = {
    ...counts(h, head),
    sent: num(h, "sent", head),
    skipped: num(h, "skipped", head),
    flows: [],
    peers: [],
  };
  for (const line of lines.slice(1)) {
    const [kind, addr] = line.trim().split(/\s+/, 2);
    const f = fields(line);
    if (kind === "flow" && addr !== undefined)
      status.flows.push({
        addr,
        ...counts(f, line),
        first: num(f, "first", line),
        highest: num(f, "highest", line),
      });
    else if (kind === "peer" && addr !== undefined) status.peers.push({ addr, sent: num(f, "sent", line) });
    else throw new Error(`vpc-udpcheck status: unexpected line "${line}"`);
  }
  return status;
}
