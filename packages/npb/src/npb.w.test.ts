import { afterAll, describe, expect, it } from "vitest";

import { isNpbClass, NPB_KERNELS } from "./result.js";
import { runNpb } from "./run.js";

// Slow tier, on demand only: `npm run test:w -w @vpc/npb`. Class W of every kernel on this host;
// process counts from NPB_W_PROCS (default "1,2,4"); NPB_W_CLASS=A runs class A instead.
// Prints a timing table at the end.
const PROCS = (process.env.NPB_W_PROCS ?? "1,2,4").split(",").map(Number);
const CLS = process.env.NPB_W_CLASS ?? "W";
if (!isNpbClass(CLS)) throw new Error(`NPB_W_CLASS must be S, W, A, B or C, not "${CLS}"`);
const rows: string[] = [];

describe(`NPB class ${CLS}`, () => {
  for (const kernel of NPB_KERNELS) {
    for (const np of PROCS) {
      it(`${kernel} ${CLS} -n ${np}: verification SUCCESSFUL`, async () => {
        const r = await runNpb({ kernel, cls: CLS, np, timeoutMs: 600_000 });
        expect(r).toMatchObject({ kernel, class: CLS, processes: np, verified: true });
        rows.push(
          `| ${kernel} | ${CLS} | ${np} | ${r.seconds.toFixed(2)} | ${r.wallSeconds.toFixed(2)} | ${r.mopsTotal.toFixed(1)} |`,
        );
      });
    }
  }
});

afterAll(() => {
  console.log(
    [
      "| kernel | class | np | Time in seconds | wall s (mpiexec) | Mop/s total |",
      "|---|---|---|---|---|---|",
      ...rows,
    ].join("\n"),
  );
});
