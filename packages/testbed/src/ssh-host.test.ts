import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  agentBuildId,
  chooseAgentSource,
  evaluateSshHost,
  formatMissing,
  parseSha256sum,
  parseSshProbe,
  planAgentCopy,
  TAR_END,
  tarHeader,
  tarPadding,
} from "./ssh-host.js";
import { sshAgentWrapper, sshHostPaths } from "./ssh-host-remote.js";

const GOOD = `os=Linux
arch=x86_64
uid=0
node=v20.19.2
qemu=QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u16)
accels=kvm tcg 
firmware=/usr/share/qemu
shm=12582912
kvm=none
uffd=0
glibc=glibc 2.36
cmd_tar=/usr/bin/tar
cmd_sha256sum=/usr/bin/sha256sum
cmd_unshare=
some_future_key=1
`;

const needs = { guestMiB: 256, copying: true, localGlibc: [2, 36] as const };

describe("ssh host probe", () => {
  it("parses every field and ignores unknown keys", () => {
    const f = parseSshProbe(GOOD);
    expect(f).toEqual({
      os: "Linux",
      arch: "x86_64",
      uid: 0,
      node: "v20.19.2",
      qemu: "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u16)",
      accels: ["kvm", "tcg"],
      firmware: "/usr/share/qemu",
      shmFreeBytes: 12582912 * 1024,
      kvm: "none",
      uffdSysctl: 0,
      glibc: [2, 36],
      commands: { tar: true, sha256sum: true, unshare: false },
    });
  });

  it("passes a complete root host (TCG, no KVM)", () => {
    const checks = evaluateSshHost(parseSshProbe(GOOD), needs);
    expect(checks.filter((c) => c.status !== "ok")).toEqual([]);
    expect(checks.map((c) => c.id)).toEqual([
      "os",
      "node",
      "qemu",
      "qemu-firmware",
      "accel",
      "shm",
      "userfaultfd",
      "tar",
      "glibc",
    ]);
  });

  it("names every missing piece with its fix", () => {
    const bad = parseSshProbe(
      "os=Linux\narch=x86_64\nuid=1000\nnode=v18.19.0\nqemu=\naccels=\nfirmware=\nshm=1024\nkvm=noaccess\nuffd=0\nglibc=glibc 2.31\ncmd_tar=\n",
    );
    const checks = evaluateSshHost(bad, needs);
    const missing = checks.filter((c) => c.status === "missing").map((c) => c.id);
    expect(missing).toEqual(["node", "qemu", "qemu-firmware", "accel", "shm", "userfaultfd", "tar", "glibc"]);
    const byId = Object.fromEntries(checks.map((c) => [c.id, c]));
    expect(byId.node!.fix).toContain("Node.js ≥ 20");
    expect(byId.accel!.fix).toContain("usermod -aG kvm");
    expect(byId.userfaultfd!.fix).toContain("vm.unprivileged_userfaultfd=1");
    expect(byId.shm!.detail).toContain("need 256 MiB");
    expect(byId.glibc!.detail).toContain("2.31 (built here against 2.36)");
    const text = formatMissing("r1", checks);
    expect(text.split("\n")).toHaveLength(8);
    expect(text).toContain("host r1: Node.js: v18.19.0; ");
  });

  it("asks for tar and glibc only when copying, and knows a kernel without userfaultfd", () => {
    const f = parseSshProbe(GOOD.replace("uffd=0", "uffd=").replace("cmd_tar=/usr/bin/tar", "cmd_tar="));
    const checks = evaluateSshHost(f, { ...needs, copying: false });
    expect(checks.map((c) => c.id)).not.toContain("tar");
    expect(checks.find((c) => c.id === "userfaultfd")!.detail).toContain("no userfaultfd");
  });

  it("rejects too little /dev/shm for the host's VMs", () => {
    const f = parseSshProbe(GOOD.replace("shm=12582912", "shm=262144"));
    expect(evaluateSshHost(f, needs).find((c) => c.id === "shm")!.status).toBe("ok");
    expect(evaluateSshHost(f, { ...needs, guestMiB: 257 }).find((c) => c.id === "shm")!.status).toBe(
      "missing",
    );
  });
});

describe("agent copy plan", () => {
  const packages = [
    { name: "@vpc/cluster", dir: "/w/packages/cluster", files: ["package.json", "dist/index.js"] },
    { name: "ssh2", dir: "/w/node_modules/ssh2", files: ["package.json", "lib/index.js"] },
    { name: "@vpc/pageset", dir: "/w/packages/pageset", files: ["package.json"] },
    { name: "@vpc/pageset", dir: "/w/packages/pageset", files: ["package.json"] },
  ];
  const image = { dir: "/w/build/images/guest", files: ["manifest.json", "vmlinuz"] };

  it("lays packages flat under node_modules and the image under images/guest", () => {
    const plan = planAgentCopy(packages, image);
    expect(plan.entries).toEqual([
      { src: "/w/packages/cluster/package.json", dest: "node_modules/@vpc/cluster/package.json" },
      { src: "/w/packages/cluster/dist/index.js", dest: "node_modules/@vpc/cluster/dist/index.js" },
      { src: "/w/node_modules/ssh2/package.json", dest: "node_modules/ssh2/package.json" },
      { src: "/w/node_modules/ssh2/lib/index.js", dest: "node_modules/ssh2/lib/index.js" },
      { src: "/w/packages/pageset/package.json", dest: "node_modules/@vpc/pageset/package.json" },
      { src: "/w/build/images/guest/manifest.json", dest: "images/guest/manifest.json" },
      { src: "/w/build/images/guest/vmlinuz", dest: "images/guest/vmlinuz" },
    ]);
    expect(plan.agentModule).toBe("node_modules/@vpc/cluster/dist/index.js");
  });

  it("refuses two versions of one package and a closure without the host agent", () => {
    expect(() =>
      planAgentCopy(
        [...packages, { name: "ssh2", dir: "/w/node_modules/x/node_modules/ssh2", files: [] }],
        image,
      ),
    ).toThrow(/two copies of ssh2/);
    expect(() => planAgentCopy(packages.slice(1), image)).toThrow(/@vpc\/cluster is not in/);
  });

  it("identifies a build by paths and contents, not by order", () => {
    const a = [
      { dest: "x", sha256: "1" },
      { dest: "y", sha256: "2" },
    ];
    expect(agentBuildId(a)).toBe(agentBuildId([...a].reverse()));
    expect(agentBuildId(a)).not.toBe(
      agentBuildId([
        { dest: "x", sha256: "1" },
        { dest: "y", sha256: "3" },
      ]),
    );
    expect(agentBuildId(a)).not.toBe(
      agentBuildId([
        { dest: "x", sha256: "1" },
        { dest: "z", sha256: "2" },
      ]),
    );
  });

  it("reads sha256sum output, text and binary mode", () => {
    const h = "ab".repeat(32);
    expect(parseSha256sum(`${h}  /a b/c\n${h} */d\nsha256sum: /e: No such file\n`)).toEqual(
      new Map([
        ["/a b/c", h],
        ["/d", h],
      ]),
    );
  });

  it("reuses a configured agent, then the same build at the same paths, then an earlier copy", () => {
    const plan = planAgentCopy(packages, image);
    const local = new Map([
      ["/w/a", "1"],
      ["/w/b", "2"],
    ]);
    const base = {
      configuredModule: undefined,
      configuredModulePresent: false,
      localModule: "/w/packages/cluster/dist/index.js",
      localImageDir: "/w/build/images/guest",
      localSums: local,
      remoteSums: new Map<string, string>(),
      buildId: "B1",
      remoteBuildId: "",
      agentDir: "/var/tmp/vpc/agent",
      plan,
    };
    expect(
      chooseAgentSource({ ...base, configuredModule: "/opt/vpc/index.js", configuredModulePresent: true }),
    ).toEqual({
      how: "configured",
      module: "/opt/vpc/index.js",
    });
    expect(chooseAgentSource({ ...base, remoteSums: new Map(local) }).how).toBe("same-build");
    // One file differing (or missing) there is not the same build.
    expect(chooseAgentSource({ ...base, remoteSums: new Map([["/w/a", "1"]]) }).how).toBe("copy");
    expect(chooseAgentSource({ ...base, remoteSums: new Map([...local, ["/w/b", "3"]]) }).how).toBe("copy");
    expect(chooseAgentSource({ ...base, remoteBuildId: "B1" })).toEqual({
      how: "copied-before",
      module: "/var/tmp/vpc/agent/node_modules/@vpc/cluster/dist/index.js",
      imageDir: "/var/tmp/vpc/agent/images/guest",
    });
    expect(chooseAgentSource({ ...base, configuredModule: "/opt/x.js", remoteBuildId: "B0" }).how).toBe(
      "copy",
    );
  });
});

describe("ustar framing", () => {
  it("writes archives that tar extracts, with long paths split into prefix and name", () => {
    const work = mkdtempSync(join(tmpdir(), "vpc-tar-"));
    try {
      const long = `${"d".repeat(90)}/${"e".repeat(60)}/file-with-a-long-name.js`;
      const body = Buffer.from("hello\n");
      const archive = Buffer.concat([
        tarHeader("a", 0, 0o755, 1_700_000_000, "dir"),
        tarHeader("a/x.txt", body.length, 0o600, 1_700_000_000, "file"),
        body,
        tarPadding(body.length),
        tarHeader(long, 3, 0o644, 1_700_000_000, "file"),
        Buffer.from("abc"),
        tarPadding(3),
        TAR_END,
      ]);
      expect(archive.length % 512).toBe(0);
      writeFileSync(join(work, "t.tar"), archive);
      execFileSync("tar", ["-xf", join(work, "t.tar"), "-C", work]);
      expect(readFileSync(join(work, "a", "x.txt"), "utf8")).toBe("hello\n");
      expect(statSync(join(work, "a", "x.txt")).mode & 0o777).toBe(0o600);
      expect(readFileSync(join(work, long), "utf8")).toBe("abc");
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  it("refuses a path no ustar split can hold", () => {
    expect(() => tarHeader("x".repeat(300), 0, 0o644, 0, "file")).toThrow(/too long/);
  });
});

describe("ssh host commands", () => {
  it("starts the agent isolated as root, plainly otherwise, recording its PID either way", () => {
    const isolated = sshAgentWrapper({ dir: "/var/tmp/h", shmDir: "/dev/shm/vpc-tb-1-h", isolated: true })(
      "exec node a",
    );
    expect(isolated).toBe(
      "echo $$ > '/var/tmp/h/agent.pid'; exec unshare -m --propagation private sh -c 'mount --bind '\\''/dev/shm/vpc-tb-1-h'\\'' /dev/shm && exec node a'",
    );
    expect(sshAgentWrapper({ dir: "/var/tmp/h", shmDir: "/s", isolated: false })("exec node a")).toBe(
      "echo $$ > '/var/tmp/h/agent.pid'; exec node a",
    );
  });

  it("removes a directory whole only when up made it", () => {
    const h = { name: "h", ip: "1.2.3.4", sshPort: 22, dir: "/data/vpc", shmDir: "/dev/shm/vpc-tb-1-h" };
    const ssh = { hostKey: "k", agent: "copy" as const, isolated: true };
    expect(sshHostPaths({ ...h, ssh: { ...ssh, madeDir: true } })).toEqual([
      "/data/vpc",
      "/dev/shm/vpc-tb-1-h",
    ]);
    const inside = sshHostPaths({ ...h, ssh: { ...ssh, madeDir: false } });
    expect(inside).toContain("/data/vpc/store");
    expect(inside).not.toContain("/data/vpc");
    expect(sshHostPaths(h)).toEqual(inside);
  });
});
