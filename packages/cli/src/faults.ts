/** `vpc faults store`: a fault campaign of checkpoint-store damage, run on copies of a user's store. */
import { parseArgs } from "node:util";
import { StoreError } from "@vpc/storage";
import { type CliIo, EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, usageErrorOf } from "./cli-common.js";
import {
  campaignFailed,
  describeDamage,
  FAILING_OUTCOMES,
  formatOutcomeTable,
  tallyOutcomes,
} from "./store-damage.js";
import { runStoreDamageCampaign, StoreCampaignError } from "./store-damage-campaign.js";

export const FAULTS_USAGE = `Usage: vpc faults store --store DIR [options]

Damages copies of the checkpoint store DIR, one damage per trial, and counts what the store makes
of each: a flipped byte, a truncation or a deletion of a file of each kind (page data, page index,
epoch manifest, device state, channel log, global manifest, store marker), in the newest epoch and
in an older part its chain needs. Each trial copies DIR to a scratch directory (DIR itself is only
read), damages the copy, runs the store's verify on it, and restores the newest epoch of every VM as
"vpc restore" picks it, comparing RAM, device state and channel log with the undamaged store.

Outcomes: detected (an error names the file, and the offset of a flipped byte), older+notice (an
older epoch restored intact, saying which newer one was skipped and why), harmless (nothing read
the damaged bytes), UNDETECTED (different data returned without an error), SILENT-OLDER (an older
epoch restored without a word), UNCLEAR (an error that does not name the damaged file).

Options:
      --store DIR      checkpoint store to copy (required; must verify cleanly)
      --trials N       damages to inject (default: one per file kind x target x damage type)
      --seed S         seed of the damage choice, printed so a run can be repeated (default: random)
      --scratch DIR    where the copies go (default: the system's temp directory); needs room
                       for one copy of the store and one VM's RAM
      --json           print one JSON object (every trial and the table's rows) instead of text
  -h, --help           show this help

Exit status: 0 no damage went undetected, fell back silently or was reported unclearly;
1 some did, or a step failed; 2 usage error.`;

interface FaultsArgs {
  storeDir: string;
  trials: number | undefined;
  seed: number;
  scratchDir: string | undefined;
  json: boolean;
}

function intArg(name: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min)
    throw new UsageError(`${name} must be an integer >= ${min}, got ${value}`);
  return n;
}

export function parseFaultsArgs(args: readonly string[], randomSeed: () => number): FaultsArgs | "help" {
  const { values, positionals } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: true,
    options: {
      store: { type: "string" },
      trials: { type: "string" },
      seed: { type: "string" },
      scratch: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return "help";
  const [sub, ...extra] = positionals;
  if (sub === undefined) throw new UsageError("missing campaign (store)");
  if (sub !== "store") throw new UsageError(`unknown campaign "${sub}"`);
  if (extra.length > 0) throw new UsageError(`unexpected argument: ${extra[0]}`);
  if (values.store === undefined) throw new UsageError("--store DIR is required");
  const seed = intArg("--seed", values.seed, 0) ?? randomSeed();
  if (seed > 0xffffffff) throw new UsageError(`--seed must be below 2^32, got ${seed}`);
  return {
    storeDir: values.store,
    trials: intArg("--trials", values.trials, 1),
    seed,
    scratchDir: values.scratch,
    json: values.json,
  };
}

export async function runFaultsCli(args: readonly string[], io: CliIo): Promise<number> {
  let a: FaultsArgs | "help";
  try {
    a = parseFaultsArgs(args, () => Math.floor(Math.random() * 0x100000000));
  } catch (e) {
    io.stderr(`vpc faults: ${usageErrorOf(e)}\n\n${FAULTS_USAGE}\n`);
    return EXIT_USAGE;
  }
  if (a === "help") {
    io.stdout(`${FAULTS_USAGE}\n`);
    return EXIT_OK;
  }
  try {
    if (!a.json) io.stdout(`store ${a.storeDir}, seed ${a.seed}\n`);
    const r = await runStoreDamageCampaign({
      storeDir: a.storeDir,
      seed: a.seed,
      ...(a.trials === undefined ? {} : { trials: a.trials }),
      ...(a.scratchDir === undefined ? {} : { scratchDir: a.scratchDir }),
      ...(a.json ? {} : { progress: (line: string) => io.stdout(`${line}\n`) }),
    });
    const rows = tallyOutcomes(r.results);
    const failed = campaignFailed(r.results);
    if (a.json) {
      io.stdout(`${JSON.stringify({ ok: !failed, ...r, rows }, null, 2)}\n`);
    } else {
      const lines = [
        "",
        `${r.results.length} damages to copies of ${r.storeDir} (newest epoch ${r.newestEpoch}, VMs ${r.vmIds.join(" ")}, ${r.files} files), seed ${r.seed}`,
        "",
        formatOutcomeTable(rows),
      ];
      const bad = r.results.filter((t) => FAILING_OUTCOMES.includes(t.outcome));
      if (bad.length > 0) lines.push("", "failed trials:");
      for (const t of bad) lines.push(`  ${t.outcome}: ${describeDamage(t.damage)}`, `    ${t.detail}`);
      lines.push("", failed ? "FAILED" : "ok       every damage was detected, reported or harmless");
      io.stdout(`${lines.join("\n")}\n`);
    }
    return failed ? EXIT_FAILED : EXIT_OK;
  } catch (e) {
    if (!(e instanceof StoreCampaignError) && !StoreError.isInstance(e)) throw e;
    const code = StoreError.isInstance(e) ? ` [${e.code}]` : "";
    io.stderr(`vpc faults store: ${e.message}${code}\n`);
    return EXIT_FAILED;
  }
}
