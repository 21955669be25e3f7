import { describe, expect, it } from "vitest";
import { SerialScanner } from "./serial-scanner.js";

const LOG = "[    0.0] Linux version 6.1\r\nloading modules\nVPC-GUEST-READY hostname=a uptime=1.2\nafter\n";

describe("SerialScanner", () => {
  it("finds the marker at every split point of the stream", () => {
    for (let i = 0; i <= LOG.length; i++) {
      const s = new SerialScanner("VPC-GUEST-READY");
      s.push(LOG.slice(0, i));
      s.push(LOG.slice(i));
      expect(s.readyLine).toBe("VPC-GUEST-READY hostname=a uptime=1.2");
    }
  });

  it("returns false until the marker arrives", () => {
    const s = new SerialScanner("VPC-GUEST-READY");
    expect(s.push("booting\nVPC-GUEST")).toBe(false);
    expect(s.push("-READY x")).toBe(false);
    expect(s.push("\n")).toBe(true);
    expect(s.readyLine).toBe("VPC-GUEST-READY x");
  });

  it("only matches the marker at the start of a line", () => {
    const s = new SerialScanner("VPC-GUEST-READY");
    expect(s.push("echo VPC-GUEST-READY\n")).toBe(false);
  });

  it("reports a kernel panic", () => {
    const s = new SerialScanner("VPC-GUEST-READY");
    s.push("[ 1.0] Kernel panic - not syncing: VFS: Unable to mount root fs\n");
    expect(s.panicLine).toContain("Unable to mount root fs");
    expect(s.readyLine).toBeUndefined();
  });

  it("reports a failure the guest's boot script states, but not the words quoted mid-line", () => {
    const s = new SerialScanner("VPC-GUEST-READY");
    s.push("echo VPC-GUEST-FAILED quoted\n");
    expect(s.panicLine).toBeUndefined();
    s.push("VPC-GUEST-FAILED initramfs incomplete: 128 MiB of guest RAM is too small to unpack the image\n");
    expect(s.panicLine).toContain("too small");
  });

  it("keeps only the last lines, including an unterminated one", () => {
    const s = new SerialScanner("READY", 3);
    s.push("1\n2\n3\n4\r\n5");
    expect(s.tail()).toBe("3\n4\n5");
  });

  it("rejects an empty marker", () => {
    expect(() => new SerialScanner("")).toThrow(RangeError);
  });
});
