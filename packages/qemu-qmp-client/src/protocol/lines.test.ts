import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeJsonLine, LineDecoder, type LineFrame } from "./lines.js";

const texts = (frames: LineFrame[]): string[] =>
  frames.map((f) => (f.type === "line" ? f.text : `<oversized ${f.bytesSeen}>`));

/** Feeds `bytes` cut into the given pieces and returns every frame. */
function feed(decoder: LineDecoder, bytes: Buffer, cuts: number[]): LineFrame[] {
  const frames: LineFrame[] = [];
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    frames.push(...decoder.push(bytes.subarray(start, cut)));
    start = cut;
  }
  return frames;
}

// Two QMP messages with "\r\n" endings and a multi-byte character, as QEMU might send them.
const stream = Buffer.from(
  '{"return": {}, "id": "a"}\r\n{"event": "STOP", "data": {"n": "é€😀"}}\r\n',
  "utf8",
);
const expected = ['{"return": {}, "id": "a"}', '{"event": "STOP", "data": {"n": "é€😀"}}'];

describe("LineDecoder", () => {
  it("yields the same lines whichever single offset the stream is split at", () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const decoder = new LineDecoder(1024);
      expect(texts(feed(decoder, stream, [cut])), `split at ${cut}`).toEqual(expected);
      expect(decoder.pendingBytes).toBe(0);
    }
  });

  it("yields the same lines when every byte arrives on its own", () => {
    const decoder = new LineDecoder(1024);
    const cuts = Array.from({ length: stream.length - 1 }, (_, i) => i + 1);
    expect(texts(feed(decoder, stream, cuts))).toEqual(expected);
  });

  it("yields many messages from one chunk, in order", () => {
    const many = Array.from({ length: 500 }, (_, i) => JSON.stringify({ return: i, id: `x${i}` }));
    const decoder = new LineDecoder(1024);
    expect(texts(decoder.push(Buffer.from(`${many.join("\r\n")}\r\n`)))).toEqual(many);
  });

  it("yields exactly the messages sent, for any messages cut into any chunks", () => {
    const message = fc.string({ unit: "grapheme", maxLength: 40 }).map((text) => JSON.stringify({ text }));
    fc.assert(
      fc.property(
        fc.array(message, { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        fc.boolean(),
        (messages, rawCuts, crlf) => {
          const bytes = Buffer.from(messages.map((m) => m + (crlf ? "\r\n" : "\n")).join(""));
          const cuts = [...new Set(rawCuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const decoder = new LineDecoder(1024);
          expect(texts(feed(decoder, bytes, cuts))).toEqual(messages);
          expect(decoder.pendingBytes).toBe(0);
        },
      ),
    );
  });

  it("accepts bare \\n endings and skips blank lines", () => {
    const decoder = new LineDecoder(64);
    expect(texts(decoder.push(Buffer.from('{"a":1}\n\n\r\n{"b":2}\n')))).toEqual(['{"a":1}', '{"b":2}']);
  });

  it("holds an unfinished line back and reports its size", () => {
    const decoder = new LineDecoder(64);
    expect(texts(decoder.push(Buffer.from('{"a":1}\n{"b":')))).toEqual(['{"a":1}']);
    expect(decoder.pendingBytes).toBe(5);
    expect(texts(decoder.push(Buffer.from("2}\r\n")))).toEqual(['{"b":2}']);
    expect(decoder.pendingBytes).toBe(0);
  });

  it("takes a line of exactly maxLineBytes, with or without \\r, at any split", () => {
    const line = "x".repeat(16);
    for (const ending of ["\n", "\r\n"]) {
      const bytes = Buffer.from(line + ending);
      for (let cut = 0; cut <= bytes.length; cut++) {
        expect(texts(feed(new LineDecoder(16), bytes, [cut]))).toEqual([line]);
      }
    }
  });

  it("reports an oversized line once, at any split, and resynchronises at the next line", () => {
    const bytes = Buffer.from(`${"y".repeat(40)}\r\n{"ok":1}\r\n`);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const frames = feed(new LineDecoder(16), bytes, [cut]);
      expect(
        frames.filter((f) => f.type === "oversized"),
        `split at ${cut}`,
      ).toHaveLength(1);
      expect(texts(frames.filter((f) => f.type === "line"))).toEqual(['{"ok":1}']);
    }
  });

  it("keeps memory bounded while skipping an endless line", () => {
    const decoder = new LineDecoder(16);
    const frames: LineFrame[] = [];
    for (let i = 0; i < 100; i++) frames.push(...decoder.push(Buffer.alloc(1000, 0x7a)));
    expect(frames).toEqual([{ type: "oversized", bytesSeen: 1000 }]);
    expect(decoder.pendingBytes).toBe(100_000);
  });

  it("refuses a nonsensical limit", () => {
    expect(() => new LineDecoder(0)).toThrow(RangeError);
  });
});

describe("encodeJsonLine", () => {
  it("writes one line that the decoder reads back", () => {
    const value = {
      execute: "human-monitor-command",
      arguments: { "command-line": "info\nstatus é" },
      id: "i",
    };
    const bytes = encodeJsonLine(value);
    expect(bytes.indexOf(0x0a)).toBe(bytes.length - 1);
    const [frame] = new LineDecoder(1024).push(bytes);
    expect(frame?.type === "line" && JSON.parse(frame.text)).toEqual(value);
  });
});
