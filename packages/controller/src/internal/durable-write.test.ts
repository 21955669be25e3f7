import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { writeFileDurable } from "./durable-write.js";

describe("writeFileDurable", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "vpc-durable-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("replaces the file with the new content, with the mode asked, and leaves no temp file", async () => {
    const path = join(dir, "state.json");
    await writeFile(path, "old");
    await writeFileDurable(path, "new", { mode: 0o600 });
    expect(await readFile(path, "utf8")).toBe("new");
    await writeFileDurable(join(dir, "fresh"), Buffer.from([1, 2, 3]), { mode: 0o600 });
    expect((await stat(join(dir, "fresh"))).mode & 0o777).toBe(0o600);
    expect((await readdir(dir)).sort()).toEqual(["fresh", "state.json"]);
  });

  it("leaves the old file and no temp file when the rename fails", async () => {
    const target = join(dir, "a-directory");
    await writeFile(join(dir, "keep"), "x");
    await mkdir(join(target, "not-empty"), { recursive: true });
    await expect(writeFileDurable(target, "data")).rejects.toThrow();
    expect((await readdir(dir)).sort()).toEqual(["a-directory", "keep"]);
  });

  it("fails naming the path when its directory does not exist", async () => {
    await expect(writeFileDurable(join(dir, "missing", "f"), "data")).rejects.toThrow(/missing/);
  });
});
