import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { BootError, defaultGuestImageDir, type GuestImage, loadGuestImage } from "@vpc/controller";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultHostImageDir, QemuHost } from "./qemu-host.js";

const run = promisify(execFile);
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
// L2 under TCG inside TCG is ~17× slower than L1 (FIELD-NOTES §4): minutes on a busy machine.
const NESTED = process.env.VPC_NESTED === "1";
const NESTED_TIMEOUT_MS = Number(process.env.VPC_NESTED_TIMEOUT_MS ?? 900_000);

// Unique per run: other helpers and tests use their own bridges and prefixes.
const tag = process.pid.toString(36).slice(-5);
const BRIDGE = `vpcti${tag}`;
const NET = `10.231.${(process.pid % 200) + 20}`;

describe("QemuHost (L1 host VM on this machine's root, TCG)", () => {
  let host: QemuHost | undefined;
  let guest: GuestImage;

  beforeAll(async () => {
    // Cached: a no-op when the image is current (CI builds it here on first use).
    await run("bash", [join(REPO, "images/host/build.sh"), defaultHostImageDir()], { maxBuffer: 1 << 24 });
    guest = await loadGuestImage(defaultGuestImageDir());
    await run("ip", ["link", "add", BRIDGE, "type", "bridge"]);
    await run("ip", ["addr", "add", `${NET}.1/24`, "dev", BRIDGE]);
    await run("ip", ["link", "set", BRIDGE, "up"]);
    host = await QemuHost.start({
      name: `l1-${tag}`,
      memMiB: 1536,
      fabric: { ip: `${NET}.2/24`, bridge: BRIDGE },
      authorizedKeys: [join(guest.dir, "client_key.pub")],
    });
    console.log(`L1 host ready in ${(host.readyMs / 1000).toFixed(1)} s (spawn → SSH)`);
  });

  afterAll(async () => {
    await host?.stop();
    await run("ip", ["link", "del", BRIDGE]).catch(() => undefined);
  });

  it("runs this machine's Node and QEMU inside, with its fabric NIC and /dev/shm", async () => {
    const h = host!;
    // One exec for all the probes: each exec costs a shell start in a TCG guest (seconds when busy).
    const out = await h.run(
      [
        "echo node=$(node -e 'console.log(1+1)')",
        "echo qemu=$(qemu-system-x86_64 --version | head -1)",
        "echo hostname=$(hostname)",
        "echo eth1=$(ip -4 -o addr show eth1 | awk '{print $4}')",
        "echo shm=$(df -m --output=size /dev/shm | tail -1 | tr -d ' ')",
        `echo repo=$(test -e ${join(REPO, "package.json")} && echo yes)`,
        "echo x > /l1-only-file && echo wrote=yes",
        "echo keys=$(wc -l < /root/.ssh/authorized_keys)",
        "echo tun=$(modprobe tun && test -c /dev/net/tun && echo yes)",
      ].join("; "),
      { timeoutMs: 300_000 },
    );
    const v = Object.fromEntries(
      out
        .trim()
        .split("\n")
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    expect(v).toMatchObject({
      node: "2",
      hostname: `l1-${tag}`,
      eth1: `${NET}.2/24`,
      shm: "1152", // 3/4 of 1536 MiB by default
      repo: "yes", // the machine's own files, project included
      wrote: "yes",
      keys: "2", // the image's key plus the extra authorized_keys file
      tun: "yes", // modprobe against the image's module tree
    });
    expect(v.qemu).toMatch(/^QEMU emulator version/);
    // The root is read-only underneath: the write landed in the L1's tmpfs overlay only.
    expect(existsSync("/l1-only-file")).toBe(false);
    // The fabric works from the root namespace through the bridge and the QEMU-made tap.
    expect(h.tap).toBe(`vpcf-l1-${tag}`);
    expect(h.fabricSsh).toMatchObject({ host: `${NET}.2`, port: 22 });
    const key = join(h.image.dir, "client_key.dropbear");
    const viaFabric = await run(
      "dbclient",
      ["-y", "-y", "-i", key, "-p", "22", `root@${NET}.2`, "hostname"],
      {
        timeout: 120_000,
      },
    );
    expect(viaFabric.stdout).toBe(`l1-${tag}\n`);
  });

  it.runIf(NESTED)(
    "boots an L2 guest inside the L1 and reaches it over SSH from the L1",
    async () => {
      const h = host!;
      const g = guest;
      // One exec: start the L2, wait for its ready marker, time it, SSH into it, stop it.
      const script = [
        "set -e",
        "d=$(mktemp -d)",
        "start=$(cut -d' ' -f1 /proc/uptime)",
        `qemu-system-x86_64 -accel tcg -machine q35 -m 256 -nodefaults -display none -no-reboot \
-kernel ${g.kernel} -initrd ${g.initrd} -serial file:$d/serial.log \
-append 'console=ttyS0 random.trust_cpu=on panic=-1 no_timer_check quiet vpc.hostname=l2' \
-netdev user,id=mgmt,hostfwd=tcp:127.0.0.1:2222-:22 -device virtio-net-pci,netdev=mgmt \
-pidfile $d/pid </dev/null >$d/out 2>&1 &`,
        "q=$!",
        "trap 'kill $q 2>/dev/null; rm -rf $d' EXIT",
        `until grep -q '^${g.readyMarker}' $d/serial.log 2>/dev/null; do kill -0 $q || { cat $d/out; exit 3; }; sleep 1; done`,
        "ready=$(cut -d' ' -f1 /proc/uptime)",
        `echo "l2-ready-s $(echo "$ready $start" | awk '{print $1 - $2}')"`,
        `dbclient -y -y -i ${join(g.dir, "client_key.dropbear")} -p 2222 root@127.0.0.1 'echo l2-hostname $(hostname)' 2>/dev/null`,
      ].join("\n");
      const out = await h.run(script, { timeoutMs: NESTED_TIMEOUT_MS });
      const seconds = Number(/l2-ready-s (\S+)/.exec(out)?.[1]);
      console.log(`L2 guest ready inside the L1 in ${seconds.toFixed(1)} s (L1 clock, launch → marker)`);
      expect(seconds).toBeGreaterThan(0);
      expect(out).toContain("l2-hostname l2");
    },
    NESTED_TIMEOUT_MS + 60_000,
  );

  it("stops cleanly: QEMU, its tap and its directories are gone", async () => {
    const h = host!;
    const { runDir, shmDir } = h.vm;
    await h.stop();
    expect(h.state).toBe("exited");
    expect(existsSync(runDir)).toBe(false);
    expect(existsSync(shmDir)).toBe(false);
    await expect(run("ip", ["link", "show", h.tap!])).rejects.toThrow();
  });

  it("fails to start with a BootError and leaves nothing behind when the root cannot be shared", async () => {
    const before = new Set(await readdir(tmpdir()));
    const err = await QemuHost.start({
      name: `l1bad-${tag}`,
      rootDir: "/nonexistent-vpc-root",
      bootTimeoutMs: 60_000,
    }).catch((e: unknown) => e);
    expect(BootError.isInstance(err)).toBe(true);
    const leaked = (await readdir(tmpdir())).filter(
      (f) => !before.has(f) && f.startsWith(`vpc-l1bad-${tag}`),
    );
    expect(leaked).toEqual([]);
  });
});
