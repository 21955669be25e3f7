import { mkdtemp, rm } from "node:fs/promises";
import { createConnection, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { parseSendQueue, unreadBytes } from "./unread-bytes.js";

it("parses the Send-Q of one socket out of ss -xnH output", () => {
  const out = [
    "u_str ESTAB 0      0      /run/a.sock 1405860 * 1405861",
    "u_str ESTAB 0      6400   /tmp/sstest.sock 1405864 * 1405863",
    "u_str ESTAB 0      0      * 1405863 * 1405864",
  ].join("\n");
  expect(parseSendQueue(out, "1405864")).toBe(6400);
  expect(parseSendQueue(out, "1405863")).toBe(0);
  expect(parseSendQueue(out, "42")).toBeUndefined();
});

/** Runs `body` with a connected unix socket pair (writer = the accepting end), then cleans up. */
async function withPair(body: (writer: Socket, reader: Socket) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "vnet-unread-"));
  const server = createServer();
  const accepted = new Promise<Socket>((r) => server.once("connection", r));
  await new Promise<void>((r) => server.listen(join(dir, "s.sock"), r));
  const reader = createConnection(join(dir, "s.sock"));
  try {
    const writer = await accepted;
    await body(writer, reader);
    writer.destroy();
  } finally {
    reader.destroy();
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  }
}

it("sees bytes the peer has not read, and none once it has", async () => {
  await withPair(async (writer, reader) => {
    reader.pause();
    writer.write(Buffer.alloc(300_000)); // more than the reader's stream buffer takes while paused
    await new Promise((r) => setTimeout(r, 50));
    expect(await unreadBytes(writer)).toBeGreaterThan(0);
    let got = 0;
    reader.on("data", (c: Buffer) => {
      got += c.length;
    });
    reader.resume();
    while (got < 300_000) await new Promise((r) => setTimeout(r, 10));
    expect(await unreadBytes(writer)).toBe(0);
  });
});

it("answers callers that ask together from one ss run each round", async () => {
  await withPair(async (writer) => {
    // Many concurrent asks (as when every port of a host flips at once) all get an answer.
    const all = await Promise.all(Array.from({ length: 8 }, () => unreadBytes(writer)));
    expect(all).toEqual(Array(8).fill(0));
  });
});
