import { describe, expect, it } from "vitest";

import { npbBinDir } from "./bin-dir.js";
import { NPB_KERNELS } from "./result.js";
import { runNpb } from "./run.js";

// Every kernel, class S, on this host under mpiexec -n 1, 2 and 4 (the root `make test` builds
// build/npb/bin first via `make images`; set NPB_BIN_DIR to test other binaries). A missing
// binary fails its tests with NpbError BINARY_MISSING ("run `make npb` first").
const PROCS = [1, 2, 4];

describe(`NPB class S from ${npbBinDir()}`, () => {
  for (const kernel of NPB_KERNELS) {
    for (const np of PROCS) {
      it(`${kernel} S -n ${np}: verification SUCCESSFUL`, async () => {
        const r = await runNpb({ kernel, cls: "S", np, timeoutMs: 120_000 });
        expect(r.stdout).toMatch(/^ Verification\s+=\s+SUCCESSFUL$/m);
        expect(r).toMatchObject({ kernel, class: "S", processes: np, verified: true });
      });
    }

    it(`${kernel} S -n 2 with a wrong reference value: UNSUCCESSFUL`, async () => {
      const r = await runNpb({
        kernel,
        cls: "S",
        np: 2,
        env: { NPB_TEST_WRONG_REFERENCE: "1" },
        timeoutMs: 120_000,
      });
      expect(r.stdout).toMatch(/^ Verification\s+=\s+UNSUCCESSFUL$/m);
      expect(r.verified).toBe(false);
    });
  }

  it("rejects a process count the kernel does not allow, with exit code 2", async () => {
    await expect(runNpb({ kernel: "cg", cls: "S", np: 3, timeoutMs: 60_000 })).rejects.toMatchObject({
      code: "EXIT_FAILURE",
      exitCode: 2,
    });
  });
});
