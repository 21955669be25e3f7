import { execFile } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { validateClusterConfig } from "./config.js";
import { DONE, oversubscription, resultBlocks, workloadCommand } from "./workload.js";

const fixture = (name: string) => readFile(join(import.meta.dirname, "../../npb/src/fixtures", name), "utf8");

describe("resultBlocks", () => {
  it("parses every complete result block and leaves out one still being printed", async () => {
    const one = await fixture("mg-S-np2.txt");
    expect(resultBlocks(one).map((b) => [b.kernel, b.verified])).toEqual([["mg", true]]);
    const two = `${one}\n${one}`;
    expect(resultBlocks(two)).toHaveLength(2);
    // Cut the second copy inside its Verification line: only the first block counts.
    const cut = two.slice(0, two.lastIndexOf("SUCCESSFUL") + 4);
    expect(resultBlocks(cut)).toHaveLength(1);
    expect(resultBlocks("no result here")).toEqual([]);
  });

  it("keeps an unsuccessful block, so the caller sees it was not verified", async () => {
    const wrong = await fixture("is-W-np4-wrong-reference.txt");
    expect(resultBlocks(wrong).map((b) => b.verified)).toEqual([false]);
  });
});

describe("oversubscription", () => {
  const twoByTwo = validateClusterConfig({
    hosts: [
      { name: "h1", vms: [{ name: "vm1" }, { name: "vm2" }] },
      { name: "h2", vms: [{ name: "vm3" }, { name: "vm4" }] },
    ],
  });

  it("warns when the ranks on this machine's VMs outnumber its cores, naming both", () => {
    expect(oversubscription(twoByTwo, 4, 2)).toMatch(/^4 MPI ranks on this machine's 4 VMs and 2 cores: /);
    expect(oversubscription(twoByTwo, 4, 4)).toBeUndefined();
    expect(oversubscription(twoByTwo, 2, 2)).toBeUndefined();
    // More ranks than VMs wrap round the VM list: two per VM.
    expect(oversubscription(twoByTwo, 8, 4)).toMatch(/^8 MPI ranks on this machine's 4 VMs and 4 cores: /);
  });

  it("counts only VMs on netns hosts, which share this machine's cores", () => {
    const nested = validateClusterConfig({
      hosts: [
        { name: "q1", kind: "qemu", vms: [{ name: "vm1" }, { name: "vm2" }] },
        { name: "h2", vms: [{ name: "vm3" }] },
      ],
    });
    expect(oversubscription(nested, 3, 2)).toBeUndefined();
    expect(oversubscription(nested, 3, 0)).toMatch(/^1 MPI ranks on this machine's 1 VMs/);
    // Ranks 0 and 1 land on the qemu host's VMs: none here.
    expect(oversubscription(nested, 2, 0)).toBeUndefined();
  });
});

describe("workloadCommand", () => {
  // The guest's script, run here with a stub mpiexec on PATH (the command's `cd /root`, setsid
  // and output redirection are the guest's business; the script between the quotes is the logic).
  async function runScript(mpiexecExit: number, repeat: number): Promise<string> {
    const config = validateClusterConfig({
      hosts: [{ name: "h1", vms: [{ name: "vm1" }] }],
      workload: { repeat },
    });
    const script = /sh -c '(.*)' >/.exec(workloadCommand(config))?.[1];
    if (script === undefined) throw new Error("no sh -c script in the workload command");
    const dir = await mkdtemp(join(tmpdir(), "vpc-workload-"));
    try {
      await writeFile(join(dir, "mpiexec"), `#!/bin/sh\necho run\nexit ${mpiexecExit}\n`);
      await chmod(join(dir, "mpiexec"), 0o755);
      const { stdout } = await promisify(execFile)("sh", ["-c", script], {
        env: { PATH: `${dir}:${process.env.PATH ?? ""}` },
      });
      return stdout;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  it("runs the kernel `repeat` times, then prints the done marker with status 0", async () => {
    expect(await runScript(0, 2)).toBe(`run\nrun\n${DONE} rc=0\n`);
  });

  it("stops at a failed run and still prints the marker, with its status", async () => {
    expect(await runScript(3, 2)).toBe(`run\n${DONE} rc=1\n`);
  });
});
