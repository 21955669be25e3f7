/** `vpc doctor`: checks this machine's prerequisites and prints the fix for each missing piece. */
import { parseArgs } from "node:util";
import { type DoctorReport, formatDoctorReport, runDoctor } from "@vpc/testbed";
import type { CliIo } from "./cli-common.js";
import { usageErrorOf } from "./cli-common.js";

const DOCTOR_USAGE = `Usage: vpc doctor [--json]

Checks what the testbed needs on this machine: Node, QEMU (version, TCG module, firmware),
userfaultfd write-protect on shared memory (through the dirty-log agent), /dev/net/tun,
network namespaces, Linux bridges, KVM (the cached probe-boot answer; KVM is never tried
here), free /dev/shm, MPICH, dropbear, image build tools, and the built guest and host images.
Each missing piece is printed with the command that fixes it.

Options:
      --json       print the report as JSON ({ ok, checks: [{ id, title, status, required, detail, fix }] })
  -h, --help       show this help

Exit status: 0 everything required is present, 1 something required is missing, 2 usage error.`;

export interface DoctorDeps {
  readonly runDoctor: () => Promise<DoctorReport>;
}

export async function runDoctorCommand(
  args: readonly string[],
  io: CliIo,
  deps: DoctorDeps = { runDoctor: () => runDoctor() },
): Promise<number> {
  let values: { json: boolean; help: boolean };
  try {
    ({ values } = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (e) {
    io.stderr(`vpc doctor: ${usageErrorOf(e)}\n\n${DOCTOR_USAGE}\n`);
    return 2;
  }
  if (values.help) {
    io.stdout(`${DOCTOR_USAGE}\n`);
    return 0;
  }
  const report = await deps.runDoctor();
  io.stdout(values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatDoctorReport(report)}\n`);
  return report.ok ? 0 : 1;
}
