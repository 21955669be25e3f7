import type { DoctorReport } from "@vpc/testbed";
import { describe, expect, it } from "vitest";
import { main } from "./cli.js";
import { runDoctorCommand } from "./doctor.js";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t) }, out, err };
}

const missingMpich: DoctorReport = {
  ok: false,
  checks: [
    { id: "qemu", title: "QEMU (qemu-system-x86_64)", status: "ok", required: true, detail: "7.2.22" },
    {
      id: "mpich",
      title: "MPICH (mpicc, mpiexec)",
      status: "missing",
      required: true,
      detail: "not on PATH: mpicc",
      fix: "apt-get install -y mpich",
    },
  ],
};
const fine: DoctorReport = { ok: true, checks: [missingMpich.checks[0]!] };

describe("vpc doctor", () => {
  it("prints each missing piece with its fix and exits 1", async () => {
    const c = capture();
    expect(await runDoctorCommand([], c.io, { runDoctor: async () => missingMpich })).toBe(1);
    const text = c.out.join("");
    expect(text).toContain("[MISS] MPICH (mpicc, mpiexec)");
    expect(text).toContain("fix: apt-get install -y mpich");
  });

  it("exits 0 when everything required is there, and prints JSON with --json", async () => {
    const c = capture();
    expect(await runDoctorCommand(["--json"], c.io, { runDoctor: async () => fine })).toBe(0);
    expect(JSON.parse(c.out.join(""))).toEqual(fine);
  });

  it("has help and rejects unknown options without probing", async () => {
    const probe = async (): Promise<DoctorReport> => {
      throw new Error("must not probe");
    };
    const a = capture();
    expect(await runDoctorCommand(["--help"], a.io, { runDoctor: probe })).toBe(0);
    expect(a.out.join("")).toContain("Usage: vpc doctor");
    const b = capture();
    expect(await runDoctorCommand(["--frob"], b.io, { runDoctor: probe })).toBe(2);
    expect(b.err.join("")).toContain("Usage: vpc doctor");
  });

  it("is dispatched by main", async () => {
    const c = capture();
    expect(await main(["doctor", "--help"], c.io)).toBe(0);
    expect(c.out.join("")).toContain("--json");
  });
});
