/**
 * `vpc testbed up` with a bad config, through the CLI entry: each is rejected naming the field,
 * what is wrong and how to fix it, exit 1, and nothing is made (no run dir, lock or daemon).
 * The fabric prefix overlap needs an address on the machine: testbed-config.int.test.ts.
 */
import { generateKeyPairSync } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DoctorReport } from "@vpc/testbed";
import { afterEach, describe, expect, it } from "vitest";
import { runTestbedCli } from "./testbed.js";

const okDoctor = async (): Promise<DoctorReport> => ({ ok: true, checks: [] });

/** A TCP port on 127.0.0.1 that nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

describe("vpc testbed up: a bad config is rejected before anything starts", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  /** Runs `up` on `body` (an object, or raw text) in a fresh state root; checks nothing was made. */
  async function up(body: unknown, opts: { missing?: boolean } = {}): Promise<{ code: number; err: string }> {
    const dir = mkdtempSync(join(tmpdir(), "vpc-tb-cfg-"));
    dirs.push(dir);
    const root = join(dir, "run");
    const path = join(dir, "c.json");
    if (!opts.missing) writeFileSync(path, typeof body === "string" ? body : JSON.stringify(body));
    const marker = join(dir, "daemon-started");
    const err: string[] = [];
    const out: string[] = [];
    const saved = process.env.VPC_TESTBED_DIR;
    process.env.VPC_TESTBED_DIR = root;
    let code: number;
    try {
      code = await runTestbedCli(
        ["up", "--config", path],
        { stdout: (t) => out.push(t), stderr: (t) => err.push(t) },
        {
          runDoctor: okDoctor,
          // Would leave the marker if the daemon were started.
          daemonCommand: (_c, runDir) => ["/bin/sh", "-c", 'touch "$0"', marker, runDir],
        },
      );
    } finally {
      if (saved === undefined) delete process.env.VPC_TESTBED_DIR;
      else process.env.VPC_TESTBED_DIR = saved;
    }
    expect(existsSync(marker), "the daemon was started").toBe(false);
    // Only the (empty) parent of the run directories may exist: no run dir, no lock.
    expect(existsSync(root) ? readdirSync(root) : []).toEqual([]);
    return { code, err: err.join("") };
  }

  const vms = [{ name: "v1", memMiB: 192 }];
  const base = { name: "bad", fabricPrefix: "10.71.0.0/24", dataPrefix: "192.168.71.0/24" };

  it("an unknown host kind: names the field and lists the kinds", async () => {
    const r = await up({ ...base, hosts: [{ name: "h1", kind: "docker", vms }] });
    expect(r.code).toBe(1);
    expect(r.err).toContain("[CLUSTER_CONFIG]");
    expect(r.err).toContain('hosts[0].kind: unknown host kind "docker" (one of netns, qemu, ssh)');
    expect(r.err).toContain('kind is "netns"');
    expect(r.err).toContain("nothing was started or created; fix hosts[0].kind");
  });

  it("overlapping addresses: an ssh host on a netns host's fabric address", async () => {
    const r = await up({
      ...base,
      hosts: [
        { name: "h1", vms },
        { name: "s1", kind: "ssh", address: "10.71.0.2", key: "/nonexistent/key", vms: [{ name: "v2" }] },
      ],
    });
    expect(r.code).toBe(1);
    expect(r.err).toContain("hosts[1].address: 10.71.0.2 is already host h1");
    expect(r.err).toContain("give an ssh host an address outside fabricPrefix");
  });

  it("more guest RAM than the machine has: names the hosts and what to lower", async () => {
    const r = await up({
      ...base,
      hosts: [
        {
          name: "h1",
          vms: [
            { name: "v1", memMiB: 65536 },
            { name: "v2", memMiB: 65536 },
          ],
        },
      ],
    });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /hosts: the hosts need 131072 MiB of this machine's RAM \(h1 131072 MiB\) but it has \d+ MiB available/,
    );
    expect(r.err).toContain("lower vm.memMiB or hosts[].vms[].memMiB");
  });

  it("an ssh host whose key is missing: names the key field and how to make one", async () => {
    const r = await up({
      ...base,
      hosts: [{ name: "s1", kind: "ssh", address: "127.0.0.1", port: 2, key: "/nonexistent/id_vpc", vms }],
    });
    expect(r.code).toBe(1);
    expect(r.err).toContain("hosts[0].key: /nonexistent/id_vpc does not exist (ssh host s1 logs in with it)");
    expect(r.err).toContain("ssh-keygen -t ed25519 -N '' -f /nonexistent/id_vpc");
  });

  it("an ssh host whose key is not a key: names the key field", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vpc-tb-key-"));
    dirs.push(dir);
    writeFileSync(join(dir, "key"), "not a key\n", { mode: 0o600 });
    const r = await up({
      ...base,
      hosts: [{ name: "s1", kind: "ssh", address: "127.0.0.1", port: 2, key: join(dir, "key"), vms }],
    });
    expect(r.code).toBe(1);
    expect(r.err).toContain(`hosts[0].key: ${join(dir, "key")} cannot be used`);
  });

  it("an unreachable ssh host: names the host, the login and the command to try", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vpc-tb-key-"));
    dirs.push(dir);
    const key = join(dir, "key");
    const pem = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      privateKeyEncoding: { type: "pkcs1", format: "pem" },
      publicKeyEncoding: { type: "pkcs1", format: "pem" },
    }).privateKey;
    writeFileSync(key, pem, { mode: 0o600 });
    const port = await closedPort();
    const r = await up({
      ...base,
      hosts: [{ name: "s1", kind: "ssh", address: "127.0.0.1", port, user: "tester", key, vms }],
    });
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      `hosts[0]: cannot log in to ssh host s1 as tester@127.0.0.1:${port} with ${key}: connect ECONNREFUSED`,
    );
    expect(r.err).toContain(`try: ssh -i ${key} -p ${port} tester@127.0.0.1 true`);
  });

  it("malformed JSON and a missing file: the file, and the configs there are", async () => {
    const bad = await up('{ "name": "bj", "hosts": [ ');
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/bad config \S+c\.json \[CLUSTER_CONFIG\]\n {2}\$: \S+c\.json is not JSON: /);
    expect(bad.err).toContain(
      "testbed/default.json, testbed/demo.json, testbed/ci.json and testbed/nested.json",
    );
    const missing = await up(undefined, { missing: true });
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/\$: cannot read \S+c\.json: ENOENT/);
    expect(missing.err).toContain("nothing was started or created; fix the file");
  });
});
