import { describe, expect, it } from "vitest";
import { ConfigError, ControllerError } from "../errors.js";
import { validateVmConfig } from "./config.js";

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(ConfigError.isInstance(e) && ControllerError.isInstance(e)).toBe(true);
    return (e as ConfigError).field;
  }
  return undefined;
}

describe("validateVmConfig", () => {
  it("fills defaults: 256 MiB, 1 CPU, TCG, hostname = name", () => {
    const c = validateVmConfig({ name: "vm0" });
    expect(c).toMatchObject({ name: "vm0", memMiB: 256, cpus: 1, accel: "tcg", guest: { hostname: "vm0" } });
    expect(c.dataNics).toEqual([]);
    expect(c.preload).toBeUndefined();
  });

  it("names the bad field", () => {
    expect(fieldOf(() => validateVmConfig({ name: "bad name" }))).toBe("name");
    expect(fieldOf(() => validateVmConfig({ name: "a", memMiB: 10 }))).toBe("memMiB");
    expect(fieldOf(() => validateVmConfig({ name: "a", memMiB: 256.5 }))).toBe("memMiB");
    expect(fieldOf(() => validateVmConfig({ name: "a", cpus: 0 }))).toBe("cpus");
    expect(fieldOf(() => validateVmConfig({ name: "a", accel: "hvf" as "tcg" }))).toBe("accel");
    expect(fieldOf(() => validateVmConfig({ name: "a", guest: { ip: "10.0.0.1" } }))).toBe("guest.ip");
    expect(fieldOf(() => validateVmConfig({ name: "a", guest: { ip: "10.0.0.300/24" } }))).toBe("guest.ip");
    expect(fieldOf(() => validateVmConfig({ name: "a", guest: { gw: "10.0.0.1/24" } }))).toBe("guest.gw");
    expect(fieldOf(() => validateVmConfig({ name: "a", guest: { hosts: { b: "x" } } }))).toBe(
      "guest.hosts.b",
    );
    expect(fieldOf(() => validateVmConfig({ name: "a", guest: { kernelArgs: ["a b"] } }))).toBe(
      "guest.kernelArgs",
    );
    expect(fieldOf(() => validateVmConfig({ name: "a", dataNics: ["stream id=x"] }))).toBe("dataNics[0]");
    expect(fieldOf(() => validateVmConfig({ name: "a", dataNics: ["socket,id=mgmt"] }))).toBe("dataNics[0]");
    expect(fieldOf(() => validateVmConfig({ name: "a", dataNics: [{ netdev: "socket", mac: "zz" }] }))).toBe(
      "dataNics[0].mac",
    );
    expect(fieldOf(() => validateVmConfig({ name: "a", env: { "A-B": "1" } }))).toBe("env");
    expect(fieldOf(() => validateVmConfig({ name: "a", preload: "lib.so" }))).toBe("preload");
    expect(fieldOf(() => validateVmConfig({ name: "a", preload: "/l.so", env: { LD_PRELOAD: "/x" } }))).toBe(
      "env",
    );
  });

  it("assigns missing netdev ids and stable distinct MACs to data NICs", () => {
    const c = validateVmConfig({
      name: "vm0",
      dataNics: [
        "stream,server=off,addr.type=unix,addr.path=/a",
        { netdev: "socket,id=x,connect=:1", mac: "52:54:00:AA:00:01" },
      ],
    });
    expect(c.dataNics.map((n) => n.id)).toEqual(["data0", "x"]);
    expect(c.dataNics[0]?.netdev).toBe("stream,server=off,addr.type=unix,addr.path=/a,id=data0");
    expect(c.dataNics[1]?.mac).toBe("52:54:00:aa:00:01");
    expect(validateVmConfig({ name: "vm0", dataNics: ["socket"] }).dataNics[0]?.mac).toBe(c.dataNics[0]?.mac);
  });

  it("rejects duplicate netdev ids", () => {
    expect(fieldOf(() => validateVmConfig({ name: "a", dataNics: ["socket,id=q", "socket,id=q"] }))).toBe(
      "dataNics[1]",
    );
  });
});
