/**
 * `vpc store info|verify|decode|encode|gc|compact`: crit-style tooling over a checkpoint store
 * (packages/storage/FORMAT.md). Every command reads the store through `@vpc/storage`; only `gc` and
 * `compact` without `--dry-run` open it for writing.
 */
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  CheckpointStore,
  type DecodedFile,
  decodeFile,
  encodeFile,
  type PartInfo,
  StoreError,
  type StoreProblem,
} from "@vpc/storage";
import { type CliIo, EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, usageErrorOf } from "./cli-common.js";

export const STORE_USAGE = `Usage: vpc store <command> [options]

Inspects and maintains a checkpoint store (the directory format of packages/storage/FORMAT.md).

Commands:
  info DIR                      epochs, each VM's parts and chains, sizes, device state, checksum problems
  verify DIR [--epoch E]        hash every file and block the epochs need; name the file and offset of
                                any corruption (exit 1)
  decode DIR --epoch E          an epoch's files in readable form (--json: decoded, as JSON)
  decode DIR --epoch E --vm ID --pages LIST
                                a hex dump of those pages of the VM's RAM at E (LIST: 0-15,40)
  decode DIR --epoch E --vm ID --raw FILE
                                write the VM's RAM at E to FILE (a raw image, as a restore makes it)
  decode FILE                   one store file as JSON, the input of encode
  encode JSON --out FILE        write the store file JSON describes (checksums recomputed; JSON "-" is stdin)
  gc DIR [--dry-run]            remove temp leftovers and parts no committed epoch needs
  compact DIR EPOCH [--vm ID]... [--dry-run]
                                write full bases at EPOCH; with every VM, drop older epochs and their parts

Options:
      --epoch E     epoch (verify: only this one; default every committed epoch)
      --vm ID       VM id (compact: repeat to compact only those VMs; nothing is dropped then)
      --pages LIST  pages to dump, e.g. 0-15,40
      --raw FILE    RAM image to write
      --out FILE    file encode writes
      --dry-run     gc, compact: change nothing, print what would be removed
      --json        print one JSON object instead of text
  -h, --help        show this help

Exit status: 0 success (verify: every checksum matched), 1 a check or step failed, 2 usage error.`;

const SUBCOMMANDS = ["info", "verify", "decode", "encode", "gc", "compact"] as const;
type Subcommand = (typeof SUBCOMMANDS)[number];

interface StoreArgs {
  sub: Subcommand;
  target: string;
  epoch: number | undefined;
  vmIds: string[];
  pages: number[] | undefined;
  raw: string | undefined;
  out: string | undefined;
  dryRun: boolean;
  json: boolean;
}

/** Parses `0-15,40` into sorted unique page numbers. */
export function parsePageList(list: string): number[] {
  const pages = new Set<number>();
  for (const item of list.split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(item.trim());
    const first = Number(m?.[1]);
    const last = m?.[2] === undefined ? first : Number(m[2]);
    if (!m || last < first || last - first >= 1 << 20) {
      throw new UsageError(`--pages: "${item}" is not a page or a range of pages (e.g. 0-15,40)`);
    }
    for (let p = first; p <= last; p++) pages.add(p);
  }
  return [...pages].sort((a, b) => a - b);
}

function epochArg(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new UsageError(`${name} must be an epoch number (an integer >= 0), got ${value}`);
  }
  return n;
}

function parseStoreArgs(args: readonly string[]): StoreArgs | "help" {
  const { values, positionals } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: true,
    options: {
      epoch: { type: "string" },
      vm: { type: "string", multiple: true },
      pages: { type: "string" },
      raw: { type: "string" },
      out: { type: "string" },
      "dry-run": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return "help";
  const [sub, target, ...extra] = positionals;
  if (sub === undefined)
    throw new UsageError("missing command (info, verify, decode, encode, gc or compact)");
  if (!(SUBCOMMANDS as readonly string[]).includes(sub)) throw new UsageError(`unknown command "${sub}"`);
  if (target === undefined) throw new UsageError(`${sub}: missing ${sub === "encode" ? "JSON file" : "DIR"}`);
  let epoch = epochArg("--epoch", values.epoch);
  if (sub === "compact") {
    if (extra.length !== 1) throw new UsageError("compact: give DIR and EPOCH");
    epoch = epochArg("EPOCH", extra[0]);
  } else if (extra.length > 0) {
    throw new UsageError(`unexpected argument: ${extra[0]}`);
  }
  const a: StoreArgs = {
    sub: sub as Subcommand,
    target,
    epoch,
    vmIds: values.vm ?? [],
    pages: values.pages === undefined ? undefined : parsePageList(values.pages),
    raw: values.raw,
    out: values.out,
    dryRun: values["dry-run"],
    json: values.json,
  };
  if (a.sub === "encode" && a.out === undefined) throw new UsageError("encode: --out FILE is required");
  if ((a.pages !== undefined || a.raw !== undefined) && (a.vmIds.length !== 1 || a.epoch === undefined)) {
    throw new UsageError("--pages and --raw need --epoch E and one --vm ID");
  }
  if (a.dryRun && a.sub !== "gc" && a.sub !== "compact")
    throw new UsageError("--dry-run is for gc and compact");
  return a;
}

export async function runStoreCli(args: readonly string[], io: CliIo): Promise<number> {
  let a: StoreArgs | "help";
  try {
    a = parseStoreArgs(args);
  } catch (e) {
    io.stderr(`vpc store: ${usageErrorOf(e)}\n\n${STORE_USAGE}\n`);
    return EXIT_USAGE;
  }
  if (a === "help") {
    io.stdout(`${STORE_USAGE}\n`);
    return EXIT_OK;
  }
  try {
    return await COMMANDS[a.sub](a, io);
  } catch (e) {
    if (!StoreError.isInstance(e) && !(e instanceof UsageError) && !isFsError(e)) throw e;
    const code = StoreError.isInstance(e) ? ` [${e.code}]` : "";
    io.stderr(`vpc store ${a.sub}: ${e.message}${code}\n`);
    return e instanceof UsageError ? EXIT_USAGE : EXIT_FAILED;
  }
}

function isFsError(e: unknown): e is Error {
  return e instanceof Error && typeof (e as { code?: unknown }).code === "string" && "syscall" in e;
}

const COMMANDS: Record<Subcommand, (a: StoreArgs, io: CliIo) => Promise<number>> = {
  info: infoCommand,
  verify: verifyCommand,
  decode: decodeCommand,
  encode: encodeCommand,
  gc: gcCommand,
  compact: compactCommand,
};

/** Opens read-only unless the command changes the store; closes it whatever happens. */
async function withStore<T>(
  dir: string,
  writable: boolean,
  fn: (s: CheckpointStore) => Promise<T>,
): Promise<T> {
  const store = await CheckpointStore.open(dir, writable ? {} : { readOnly: true });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

const fileBytes = (p: PartInfo, name: string): number => p.files.find((f) => f.name === name)?.bytes ?? 0;

// ------------------------------------------------------------------ info

interface ChainLine {
  epoch: number;
  vmId: string;
  parts: string[];
  error?: string;
}

async function infoCommand(a: StoreArgs, io: CliIo): Promise<number> {
  const { info, chains } = await withStore(a.target, false, async (s) => {
    const info = await s.info();
    const chains: ChainLine[] = [];
    for (const ep of info.epochs) {
      for (const vmId of ep.vmIds) {
        try {
          chains.push({
            epoch: ep.epoch,
            vmId,
            parts: (await s.describeChain(vmId, ep.epoch)).map((p) => p.name),
          });
        } catch (e) {
          if (!StoreError.isInstance(e)) throw e;
          chains.push({ epoch: ep.epoch, vmId, parts: [], error: `${e.message} [${e.code}]` });
        }
      }
    }
    return { info, chains };
  });
  const broken = chains.filter((c) => c.error !== undefined).length;
  if (a.json) {
    io.stdout(json({ ...info, chains }));
    return info.problems.length + broken === 0 ? EXIT_OK : EXIT_FAILED;
  }
  const lines = [
    `store      ${info.dir} (format ${info.formatVersion})`,
    `size       ${formatBytes(info.bytes)} in ${info.vms.reduce((s, v) => s + v.parts.length, 0)} parts of ${info.vms.length} VMs`,
    `epochs     ${info.epochs.length === 0 ? "none committed" : info.epochs.map((e) => e.epoch).join(" ")}`,
  ];
  for (const e of info.epochs) {
    lines.push(
      `  epoch ${e.epoch}  committed ${new Date(e.createdAtMs).toISOString()}  VMs ${e.vmIds.join(" ")}`,
    );
  }
  for (const vm of info.vms) {
    lines.push("", `vm ${vm.vmId}`);
    lines.push(
      `  ${"PART".padEnd(18)} ${"KIND".padEnd(9)} ${"PARENT".padEnd(6)} ${"BYTES".padStart(10)} ${"PAGES FILE".padStart(10)} ${"DEVSTATE".padStart(10)} ${"CHANLOG".padStart(10)}`,
    );
    for (const p of vm.parts) {
      lines.push(
        `  ${p.name.padEnd(18)} ${p.kind.padEnd(9)} ${(p.parentEpoch === null ? "-" : String(p.parentEpoch)).padEnd(6)} ` +
          `${formatBytes(p.bytes).padStart(10)} ${formatBytes(fileBytes(p, "pages")).padStart(10)} ` +
          `${formatBytes(fileBytes(p, "devstate")).padStart(10)} ${formatBytes(fileBytes(p, "chanlog")).padStart(10)}`,
      );
    }
  }
  if (chains.length > 0) lines.push("", "chains (newest part first)");
  for (const c of chains) {
    lines.push(
      `  epoch ${c.epoch} ${c.vmId}: ${c.error ?? c.parts.map((n) => `${n[0]}${Number(n.slice(1))}`).join(" → ")}`,
    );
  }
  lines.push("");
  if (info.problems.length + broken === 0) {
    lines.push(
      "checksums  manifests and chains intact (their checksums are checked on every read);",
      `           page data, index and blobs are hashed in full by: vpc store verify ${a.target}`,
    );
  } else {
    lines.push(`checksums  ${info.problems.length + broken} problems:`);
    for (const p of info.problems) lines.push(`  ${p.code}  ${p.message}`);
    for (const c of chains) if (c.error) lines.push(`  epoch ${c.epoch} ${c.vmId}: ${c.error}`);
  }
  io.stdout(`${lines.join("\n")}\n`);
  return info.problems.length + broken === 0 ? EXIT_OK : EXIT_FAILED;
}

// ------------------------------------------------------------------ verify

/** One line per problem: the store's messages already name the file and offset; others get them added. */
function formatProblem(p: StoreProblem): string {
  const where = p.offset === undefined ? p.path : `${p.path} at offset ${p.offset}`;
  return `${p.code.padEnd(8)} ${p.message.includes(p.path) ? p.message : `${where}: ${p.message}`}`;
}

async function verifyCommand(a: StoreArgs, io: CliIo): Promise<number> {
  const r = await withStore(a.target, false, (s) => s.verifyEach(a.epoch));
  if (a.json) io.stdout(json({ ok: r.problems.length === 0, ...r }));
  else {
    const lines = r.problems.map(formatProblem);
    const summary = `${r.epochs.length} epochs, ${r.parts} parts, ${formatBytes(r.bytes)} hashed`;
    lines.push(
      r.problems.length === 0 ? `ok       ${summary}` : `FAILED   ${r.problems.length} problems; ${summary}`,
    );
    io.stdout(`${lines.join("\n")}\n`);
  }
  return r.problems.length === 0 ? EXIT_OK : EXIT_FAILED;
}

// ------------------------------------------------------------------ decode and encode

async function decodeCommand(a: StoreArgs, io: CliIo): Promise<number> {
  if (!(await stat(a.target)).isDirectory()) {
    if (a.epoch !== undefined || a.vmIds.length > 0)
      throw new UsageError(`${a.target} is a file: give no --epoch or --vm`);
    io.stdout(json(decodeFile(await readFile(a.target), a.target)));
    return EXIT_OK;
  }
  const epoch = a.epoch;
  if (epoch === undefined) throw new UsageError("decode DIR needs --epoch E (decode FILE takes one file)");
  return withStore(a.target, false, async (s) => {
    if (a.pages !== undefined) {
      for (const page of a.pages) io.stdout(hexdumpPage(page, await s.readPage(a.vmIds[0]!, epoch, page)));
      return EXIT_OK;
    }
    if (a.raw !== undefined) {
      const r = await s.restoreRam(a.vmIds[0]!, epoch, a.raw);
      io.stdout(`wrote ${a.raw}: ${formatBytes(r.bytes)} of RAM from a chain of ${r.chainLength} parts\n`);
      return EXIT_OK;
    }
    const decoded = await decodeEpoch(s, epoch, a.vmIds);
    io.stdout(a.json ? json(decoded) : `${formatEpoch(decoded)}\n`);
    return EXIT_OK;
  });
}

interface DecodedEpoch {
  epoch: DecodedFile;
  vms: {
    vmId: string;
    chain: string[];
    files: Record<string, DecodedFile | { kind: "PAGE"; bytes: number }>;
  }[];
}

/** The global manifest and the top part's files of each VM; page data as its length only. */
async function decodeEpoch(
  s: CheckpointStore,
  epoch: number,
  onlyVms: readonly string[],
): Promise<DecodedEpoch> {
  const path = join(s.dir, "epochs", `${String(epoch).padStart(16, "0")}.epoch`);
  const global = decodeFile(await readFile(path), path);
  if (global.kind !== "EPMF") throw new UsageError(`${path} is not a global manifest`);
  const vms: DecodedEpoch["vms"] = [];
  for (const { vmId } of global.vms) {
    if (onlyVms.length > 0 && !onlyVms.includes(vmId)) continue;
    const chain = await s.describeChain(vmId, epoch);
    const top = chain[0]!;
    const files: DecodedEpoch["vms"][number]["files"] = {};
    for (const name of ["manifest", "index", "devstate", "chanlog"]) {
      const file = join(top.dir, name);
      files[name] = decodeFile(await readFile(file), file);
    }
    files.pages = { kind: "PAGE", bytes: fileBytes(top, "pages") };
    vms.push({ vmId, chain: chain.map((p) => p.name), files });
  }
  for (const v of onlyVms) {
    if (!vms.some((x) => x.vmId === v)) throw new UsageError(`${v} is not in epoch ${epoch}`);
  }
  return { epoch: global, vms };
}

const RUNS_SHOWN = 12;

function formatEpoch(d: DecodedEpoch): string {
  const g = d.epoch as Extract<DecodedFile, { kind: "EPMF" }>;
  const lines = [
    `epoch ${g.epoch}  format ${g.version}  committed ${new Date(g.createdAtMs).toISOString()}`,
    ...g.vms.map((v) => `  ${v.vmId}  manifest hash ${v.manifestHash}`),
  ];
  for (const vm of d.vms) {
    const m = vm.files.manifest as Extract<DecodedFile, { kind: "VMMF" }>;
    const ix = vm.files.index as Extract<DecodedFile, { kind: "INDX" }>;
    const kind = m.compacted
      ? "compacted base"
      : m.full
        ? "full image"
        : `increment over epoch ${m.parentEpoch}`;
    const stored = ix.runs.filter((r) => r.firstSlot !== "zero").reduce((n, r) => n + r.pageCount, 0);
    const zero = ix.runs.filter((r) => r.firstSlot === "zero").reduce((n, r) => n + r.pageCount, 0);
    const codecs = new Set(
      ix.blocks.map((b) => (b.codec === 0 ? "raw" : b.codec === 1 ? "lz4" : `codec ${b.codec}`)),
    );
    lines.push(
      "",
      `vm ${vm.vmId}: ${vm.chain[0]} (${kind}); chain ${vm.chain.join(" → ")}`,
      `  manifest  RAM ${formatBytes(m.guestRamBytes)} in ${m.pageSize}-byte pages, created ${new Date(m.createdAtMs).toISOString()}`,
      `            parent hash ${m.parentManifestHash}, supersedes ${m.supersedesHash}`,
      ...m.files.map(
        (f) => `            ${f.name.padEnd(8)} ${String(f.bytes).padStart(10)} bytes  xxh64 ${f.hash}`,
      ),
      `  index     ${stored} pages stored in ${ix.blocks.length} blocks of up to ${ix.pagesPerBlock} (${[...codecs].join(", ") || "none"}), ${zero} zero pages, ${ix.runs.length} runs`,
      ...ix.runs
        .slice(0, RUNS_SHOWN)
        .map(
          (r) =>
            `            ${span("page", r.firstPage, r.pageCount)}: ${
              r.firstSlot === "zero" ? "zero" : span("slot", r.firstSlot, r.pageCount)
            }`,
        ),
      ...(ix.runs.length > RUNS_SHOWN
        ? [`            … ${ix.runs.length - RUNS_SHOWN} more runs (--json shows all)`]
        : []),
      `  devstate  ${blobBytes(vm.files.devstate)} bytes of payload; chanlog ${blobBytes(vm.files.chanlog)} bytes of payload`,
    );
  }
  return lines.join("\n");
}

const span = (what: string, first: number, count: number): string =>
  count === 1 ? `${what} ${first}` : `${what}s ${first}-${first + count - 1}`;

function blobBytes(f: DecodedFile | { kind: "PAGE"; bytes: number } | undefined): number {
  return f && "payloadBase64" in f ? Buffer.byteLength(f.payloadBase64, "base64") : 0;
}

/** `hexdump -C` style lines for one page, repeated lines folded into "*". */
export function hexdumpPage(page: number, data: Buffer): string {
  const lines = [`page ${page} (guest offset 0x${(page * data.length).toString(16)})`];
  let previous: string | undefined;
  let folded = false;
  for (let off = 0; off < data.length; off += 16) {
    const row = data.subarray(off, off + 16);
    const hex = [...row].map((b) => b.toString(16).padStart(2, "0"));
    const body = `${hex.slice(0, 8).join(" ")}  ${hex.slice(8).join(" ")}  |${[...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("")}|`;
    if (body === previous && off + 16 < data.length) {
      if (!folded) lines.push("*");
      folded = true;
      continue;
    }
    previous = body;
    folded = false;
    lines.push(`${off.toString(16).padStart(8, "0")}  ${body}`);
  }
  return `${lines.join("\n")}\n`;
}

async function encodeCommand(a: StoreArgs, io: CliIo): Promise<number> {
  const text = a.target === "-" ? await readStdin() : await readFile(a.target, "utf8");
  let decoded: DecodedFile;
  try {
    decoded = JSON.parse(text) as DecodedFile;
  } catch (e) {
    throw new UsageError(`${a.target}: not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  let bytes: Buffer;
  try {
    bytes = encodeFile(decoded);
  } catch (e) {
    if (StoreError.isInstance(e)) throw e;
    throw new UsageError(
      `${a.target}: not a decoded store file (${e instanceof Error ? e.message : String(e)})`,
    );
  }
  if (!(bytes instanceof Buffer))
    throw new UsageError(`${a.target}: unknown kind ${JSON.stringify(decoded.kind)}`);
  await writeFile(a.out!, bytes);
  io.stdout(`wrote ${a.out}: ${decoded.kind}, ${bytes.length} bytes\n`);
  return EXIT_OK;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

// ------------------------------------------------------------------ gc and compact

async function gcCommand(a: StoreArgs, io: CliIo): Promise<number> {
  const removed = await withStore(a.target, !a.dryRun, async (s) =>
    a.dryRun ? (await s.gc({ dryRun: true })).removed : [...s.removedAtOpen, ...(await s.gc()).removed],
  );
  if (a.json) io.stdout(json({ dryRun: a.dryRun, removed }));
  else io.stdout(formatRemoved(a.dryRun, removed, []));
  return EXIT_OK;
}

async function compactCommand(a: StoreArgs, io: CliIo): Promise<number> {
  const epoch = a.epoch!;
  const opts = { dryRun: a.dryRun, ...(a.vmIds.length > 0 ? { vmIds: a.vmIds } : {}) };
  const r = await withStore(a.target, !a.dryRun, async (s) => {
    const result = await s.compact(epoch, opts);
    return a.dryRun ? result : { ...result, removed: [...s.removedAtOpen, ...result.removed] };
  });
  if (a.json) {
    io.stdout(json({ dryRun: a.dryRun, ...r }));
    return EXIT_OK;
  }
  const verb = a.dryRun ? "would write" : "wrote";
  const head =
    r.compacted.length === 0
      ? `epoch ${epoch}: every VM's part is already full; no base to write\n`
      : `epoch ${epoch}: ${verb} a full base for ${r.compacted.join(", ")}\n`;
  io.stdout(head + formatRemoved(a.dryRun, r.removed, r.removedEpochs));
  return EXIT_OK;
}

function formatRemoved(dryRun: boolean, removed: readonly string[], epochs: readonly number[]): string {
  const verb = dryRun ? "would remove" : "removed";
  const lines: string[] = [];
  if (epochs.length > 0) lines.push(`${verb} global epochs ${epochs.join(" ")}`);
  const nothing = epochs.length > 0 ? "nothing else" : "nothing";
  lines.push(removed.length === 0 ? `${verb} ${nothing}` : `${verb} ${removed.length} entries:`);
  for (const p of removed) lines.push(`  ${p}`);
  return `${lines.join("\n")}\n`;
}
