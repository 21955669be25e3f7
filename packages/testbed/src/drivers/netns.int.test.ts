import { readFileSync } from "node:fs";
import { Client } from "ssh2";
import { afterEach, describe, expect, it } from "vitest";
import { testbedDown, testbedLeftovers, testbedUp } from "../hosts.js";
import type { TestbedState } from "../state.js";

function sshExec(state: TestbedState, host: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    c.on("ready", () =>
      c.exec(command, (err, ch) => {
        if (err) return reject(err);
        let out = "";
        ch.on("data", (d: Buffer) => {
          out += d.toString();
        });
        ch.on("close", () => {
          c.end();
          resolve(out);
        });
      }),
    )
      .on("error", reject)
      .connect({
        host,
        port: 22,
        username: "root",
        privateKey: readFileSync(state.clientKey),
        hostVerifier: () => true,
      });
  });
}

describe("netns testbed", () => {
  let state: TestbedState | undefined;
  afterEach(async () => {
    if (state) await testbedDown(state.runDir).catch(() => undefined);
  });

  it("brings up two hosts reachable over SSH on the fabric, and down leaves nothing", async () => {
    state = await testbedUp({
      hosts: [
        { name: "t1", ip: "10.78.0.2" },
        { name: "t2", ip: "10.78.0.3" },
      ],
      bridgeIp: "10.78.0.1",
      prefixLength: 24,
    });
    const out = await sshExec(state, "10.78.0.2", "ip -br addr show fab0; echo HOME=$HOME; ls -a /dev/shm");
    expect(out).toContain("10.78.0.2/24");
    expect(out).toContain("HOME=/root");
    // From inside host t1, host t2 is on the fabric.
    const banner = await sshExec(
      state,
      "10.78.0.2",
      `node -e 'require("net").connect(22,"10.78.0.3").once("data",d=>{console.log(String(d).trim());process.exit(0)})'`,
    );
    expect(banner).toMatch(/^SSH-2\.0-dropbear/);
    // Their /dev/shm is the host's own.
    await sshExec(state, "10.78.0.3", "touch /dev/shm/marker");
    expect(readFileSync(`${state.hosts[1]!.shmDir}/marker`)).toBeDefined();
    // A process started in a session survives as a child in the namespace until down.
    await sshExec(state, "10.78.0.2", "setsid sleep 600 </dev/null >/dev/null 2>&1 &");
    const removed = await testbedDown(state.runDir);
    expect(removed.some((r) => r.startsWith("netns"))).toBe(true);
    expect(await testbedLeftovers(state)).toEqual([]);
    state = undefined;
  });
});
