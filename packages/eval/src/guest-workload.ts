/**
 * The NPB command lines the executors run in the guest and the verdicts on their output: shared
 * by the one-VM executors (executors.ts) and the virtual-cluster restore (vc-restore.ts).
 */
import { EvaluationError } from "./errors.js";
import type { Cell } from "./format.js";

/** Kernel and class go into a shell command line: only NPB's own names pass. */
export function checkKernel(cell: Pick<Cell, "kernel" | "cls">): void {
  if (!/^[a-z]+$/.test(cell.kernel) || !/^[A-Z]$/.test(cell.cls)) {
    throw new EvaluationError("CONFIG", `bad NPB kernel/class: ${cell.kernel} ${cell.cls}`);
  }
}

/** The guest command: the kernel `runs` times back to back, stopping at the first failure. */
export function kernelCommand(cell: Pick<Cell, "kernel" | "cls" | "kernelRuns">): string {
  checkKernel(cell);
  return `cd /tmp && for i in $(seq ${cell.kernelRuns}); do mpiexec -n 1 /opt/npb/bin/${cell.kernel} ${cell.cls} || exit 1; done 2>&1`;
}

export function countVerified(stdout: string): number {
  return (stdout.match(/Verification\s*=\s*SUCCESSFUL/g) ?? []).length;
}

const RESTORE_OUT = "/root/vpc-eval-restore.out";
const RESTORE_STOP = "/root/vpc-eval-stop";
const RESTORE_DONE = "VPC-EVAL-RESTORE-DONE";

/** Reads the restore workload's output (empty before it wrote any). */
export const RESTORE_READ = `cat ${RESTORE_OUT} 2>/dev/null || true`;
/** Asks the restore workload to stop after its current run. */
export const RESTORE_STOP_COMMAND = `touch ${RESTORE_STOP}`;

/**
 * The restore cell's workload: the kernel back to back until the stop file appears, detached from
 * the SSH session (which a restore breaks) with its output in guest RAM, so both roll back with
 * the restore and the run cut by the kill goes on in the restored VM.
 */
export function restoreWorkloadCommand(cell: Pick<Cell, "kernel" | "cls">): string {
  checkKernel(cell);
  return (
    `rm -f ${RESTORE_STOP}; cd /tmp && setsid sh -c 'while [ ! -e ${RESTORE_STOP} ]; do mpiexec -n 1 ` +
    `/opt/npb/bin/${cell.kernel} ${cell.cls} || break; done; echo ${RESTORE_DONE}' >${RESTORE_OUT} 2>&1 </dev/null &`
  );
}

/**
 * The verdict on the workload after a restore: `before` is its output read right after the
 * restore (the state of the checkpoint), `after` once it stopped. Verified when every result
 * is SUCCESSFUL and at least one run completed in the restored VM.
 */
export function restoreVerdict(
  before: string,
  after: string,
): { verified: boolean; verifiedRuns: number; detail: string } {
  const total = results(after);
  const ok = countVerified(after);
  const sinceRestore = total - results(before);
  const finished = after.includes(RESTORE_DONE);
  const verified = finished && sinceRestore >= 1 && ok === total;
  return {
    verified,
    verifiedRuns: ok,
    detail: `${ok} of ${total} results SUCCESSFUL, ${sinceRestore} completed after the restore${finished ? "" : ", workload did not stop"}`,
  };
}

function results(s: string): number {
  return (s.match(/Verification\s*=\s*\S+/g) ?? []).length;
}

export interface RestoredWorkloadIo {
  /** Runs a command in the restored guest, resolving with its stdout. */
  run(command: string): Promise<string>;
  sleep(ms: number): Promise<void>;
  now(): number;
}

/**
 * Lets the restored workload complete one run (the one the checkpoint cut, if it cut one), stops
 * it and waits for it to end, within `limitMs`; returns the verdict and the final output.
 */
export async function finishRestoredWorkload(
  io: RestoredWorkloadIo,
  limitMs: number,
  pollMs = 500,
): Promise<{ verified: boolean; verifiedRuns: number; detail: string; output: string }> {
  const before = await io.run(RESTORE_READ);
  const deadline = io.now() + limitMs;
  let after = before;
  while (results(after) <= results(before) && io.now() < deadline) {
    await io.sleep(pollMs);
    after = await io.run(RESTORE_READ);
  }
  await io.run(RESTORE_STOP_COMMAND);
  while (!after.includes(RESTORE_DONE) && io.now() < deadline) {
    await io.sleep(pollMs);
    after = await io.run(RESTORE_READ);
  }
  return { ...restoreVerdict(before, after), output: after };
}
