import { describe, expect, it } from "vitest";
import { validateControlRequest } from "./control-socket.js";

describe("validateControlRequest", () => {
  it("accepts each method with its parameters", () => {
    expect(validateControlRequest("status", null)).toEqual({ method: "status" });
    expect(validateControlRequest("kill", {})).toEqual({ method: "kill" });
    expect(
      validateControlRequest("run", { kernel: "cg", class: "S", np: 4, checkpointEveryMs: 1000 }),
    ).toEqual({ method: "run", kernel: "cg", class: "S", np: 4, checkpointEveryMs: 1000 });
    expect(validateControlRequest("run", {})).toEqual({ method: "run" });
    expect(validateControlRequest("restore", { epoch: 0 })).toEqual({ method: "restore", epoch: 0 });
    expect(validateControlRequest("exec", { vm: "vm1", command: "uname -a" })).toEqual({
      method: "exec",
      vm: "vm1",
      command: "uname -a",
    });
  });

  it("rejects unknown methods, unknown or bad parameters, naming them", () => {
    const bad = (m: string, p: unknown) => () => validateControlRequest(m, p);
    expect(bad("reboot", {})).toThrow(/unknown method "reboot"/);
    expect(bad("status", { verbose: true })).toThrow(/unknown parameter verbose/);
    expect(bad("status", [1])).toThrow(/params must be an object/);
    expect(bad("run", { kernel: "lu" })).toThrow(/unknown NPB kernel "lu"/);
    expect(bad("run", { class: "Z" })).toThrow(/unknown NPB class "Z"/);
    expect(bad("run", { np: 0 })).toThrow(/np must be an integer in 1\.\.1024, got 0/);
    expect(bad("run", { checkpointEveryMs: 10 })).toThrow(/checkpointEveryMs must be an integer/);
    expect(bad("restore", { epoch: -1 })).toThrow(/epoch must be an integer/);
    expect(bad("restore", { epoch: "3" })).toThrow(/epoch must be an integer/);
    expect(bad("exec", { vm: "vm1" })).toThrow(/command must be a non-empty string/);
    expect(bad("exec", { command: "ls" })).toThrow(/vm must be a VM name/);
    expect(bad("kill", { now: 1 })).toThrow(
      expect.objectContaining({ name: "RpcError", code: "RPC_PROTOCOL" }),
    );
  });
});
