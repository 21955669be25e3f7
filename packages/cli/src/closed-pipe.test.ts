import { spawnSync } from "node:child_process";
import { EventEmitter } from "node:events";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { transformSync } from "esbuild";
import { describe, expect, it } from "vitest";
import { exitQuietlyOnClosedPipe } from "./closed-pipe.js";

describe("exitQuietlyOnClosedPipe", () => {
  it("reaps and exits 0 on EPIPE, and leaves other errors alone", () => {
    const stream = new EventEmitter();
    const calls: string[] = [];
    exitQuietlyOnClosedPipe(
      [stream],
      (code) => calls.push(`exit ${code}`),
      () => calls.push("reap"),
    );
    stream.emit("error", Object.assign(new Error("write EPIPE"), { code: "EPIPE" }));
    expect(calls).toEqual(["reap", "exit 0"]);
    expect(() => stream.emit("error", Object.assign(new Error("write EIO"), { code: "EIO" }))).toThrow("EIO");
  });

  it("a real process writing into a closed pipe exits quietly", async () => {
    // This module, compiled as is, run in a child that writes far more than a pipe holds after its
    // reader (head -c 1) has gone.
    const source = await readFile(new URL("./closed-pipe.ts", import.meta.url), "utf8");
    const { code } = transformSync(source, { loader: "ts", format: "esm" });
    const script = `${code}
      exitQuietlyOnClosedPipe([process.stdout], undefined, () => {});
      const line = "x".repeat(1023) + "\\n";
      for (let i = 0; i < 10000; i++) process.stdout.write(line);`;
    const r = spawnSync(
      "bash",
      ["-c", 'set -o pipefail; node --input-type=module -e "$VPC_SCRIPT" | head -c 1 >/dev/null'],
      {
        cwd: fileURLToPath(new URL("..", import.meta.url)),
        env: { ...process.env, VPC_SCRIPT: script },
        encoding: "utf8",
      },
    );
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });
});
