import { describe, expect, it } from "vitest";
import { classifyMessage, commandMessage } from "./messages.js";

describe("classifyMessage", () => {
  it("reads QEMU 7.2's greeting", () => {
    const text =
      '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2"}, "capabilities": ["oob"]}}';
    expect(classifyMessage(text)).toEqual({
      type: "greeting",
      greeting: {
        version: { qemu: { major: 7, minor: 2, micro: 22 }, package: "Debian 1:7.2" },
        capabilities: ["oob"],
      },
    });
  });

  it("refuses a greeting without a version", () => {
    expect(classifyMessage('{"QMP": {"capabilities": []}}')).toMatchObject({
      type: "malformed",
      reason: "unexpected-message",
    });
  });

  it("reads replies with and without ids, keeping any id shape", () => {
    expect(classifyMessage('{"return": {"a": 1}, "id": "x"}')).toEqual({
      type: "return",
      id: "x",
      hasId: true,
      value: { a: 1 },
    });
    expect(classifyMessage('{"return": {}, "id": {"n": 1}}')).toMatchObject({ id: { n: 1 }, hasId: true });
    expect(classifyMessage('{"return": "text"}')).toMatchObject({
      type: "return",
      hasId: false,
      value: "text",
    });
  });

  it("reads error replies with QEMU's class and desc", () => {
    expect(classifyMessage('{"id": 3, "error": {"class": "GenericError", "desc": "no"}}')).toEqual({
      type: "error",
      id: 3,
      hasId: true,
      errorClass: "GenericError",
      desc: "no",
    });
    expect(classifyMessage('{"error": {"class": "X"}}')).toMatchObject({ type: "malformed" });
  });

  it("reads events and fills in missing data", () => {
    expect(
      classifyMessage(
        '{"timestamp": {"seconds": 5, "microseconds": 7}, "event": "MIGRATION", "data": {"status": "active"}}',
      ),
    ).toEqual({
      type: "event",
      event: { event: "MIGRATION", data: { status: "active" }, timestamp: { seconds: 5, microseconds: 7 } },
    });
    expect(classifyMessage('{"event": "STOP"}')).toMatchObject({
      event: { event: "STOP", data: {}, timestamp: { seconds: 0, microseconds: 0 } },
    });
  });

  it.each([
    ["{bad json", "malformed-json"],
    ["", "malformed-json"],
    ["[1, 2]", "unexpected-message"],
    ["42", "unexpected-message"],
    ["null", "unexpected-message"],
    ['{"something": "else"}', "unexpected-message"],
  ])("calls %j malformed (%s) instead of throwing", (text, reason) => {
    expect(classifyMessage(text)).toMatchObject({ type: "malformed", reason });
  });
});

describe("commandMessage", () => {
  it("leaves arguments out when there are none", () => {
    expect(commandMessage("stop", "i1")).toEqual({ execute: "stop", id: "i1" });
    expect(commandMessage("migrate", "i2", { uri: "exec:cat" })).toEqual({
      execute: "migrate",
      arguments: { uri: "exec:cat" },
      id: "i2",
    });
  });
});
