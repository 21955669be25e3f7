/**
 * crit-style tooling: any store file to JSON and back (for `vpc store decode|encode`). `encodeFile`
 * recomputes the file's own checksum (trailer or header hash) and keeps every other field as given,
 * so `encodeFile(decodeFile(x))` equals `x` byte for byte for any valid file.
 */
import { StoreArgumentError } from "./errors.js";
import {
  type BlobKind,
  decodeBlob,
  decodeGlobalManifest,
  decodeIndex,
  decodePagesHeader,
  decodeStoreMarker,
  decodeVmManifest,
  encodeBlob,
  encodeGlobalManifest,
  encodeIndex,
  encodePagesHeader,
  encodeStoreMarker,
  encodeVmManifest,
  FORMAT_MAJOR,
  FORMAT_MINOR,
  HEADER_BYTES,
  type PartFileName,
  sniffKind,
  ZERO_RUN,
} from "./internal/format.js";

/** A u64 checksum as "0x" and 16 hex digits. */
export type Hex64 = string;

export type DecodedFile =
  | { kind: "STOR"; version: string; createdAtMs: number }
  | {
      kind: "EPMF";
      version: string;
      epoch: number;
      createdAtMs: number;
      vms: { vmId: string; manifestHash: Hex64 }[];
    }
  | {
      kind: "VMMF";
      version: string;
      vmId: string;
      epoch: number;
      full: boolean;
      compacted: boolean;
      parentEpoch: number | null;
      parentManifestHash: Hex64;
      supersedesHash: Hex64;
      guestRamBytes: number;
      pageSize: number;
      createdAtMs: number;
      files: { name: PartFileName; bytes: number; hash: Hex64 }[];
    }
  | {
      kind: "INDX";
      version: string;
      epoch: number;
      guestRamBytes: number;
      pageSize: number;
      pagesPerBlock: number;
      full: boolean;
      pagesFileBytes: number;
      blocks: { offset: number; storedBytes: number; pageCount: number; codec: number; hash: Hex64 }[];
      runs: { firstPage: number; pageCount: number; firstSlot: number | "zero" }[];
    }
  | { kind: "PAGE"; version: string; epoch: number; payloadBase64: string }
  | { kind: "DEVS" | "CHAN"; version: string; epoch: number; payloadBase64: string };

const VERSION = `${FORMAT_MAJOR}.${FORMAT_MINOR}`;
const hex = (v: bigint): Hex64 => `0x${v.toString(16).padStart(16, "0")}`;
const big = (h: Hex64): bigint => BigInt(h);

/** Decodes (and verifies) any store file. `path` only labels errors. */
export function decodeFile(bytes: Uint8Array, path = "<buffer>"): DecodedFile {
  const ctx = { path };
  const kind = sniffKind(bytes);
  switch (kind) {
    case "STOR":
      return { kind, version: VERSION, ...decodeStoreMarker(bytes, ctx) };
    case "EPMF": {
      const m = decodeGlobalManifest(bytes, ctx);
      return {
        kind,
        version: VERSION,
        epoch: m.epoch,
        createdAtMs: m.createdAtMs,
        vms: m.vms.map((v) => ({ vmId: v.vmId, manifestHash: hex(v.manifestHash) })),
      };
    }
    case "VMMF": {
      const m = decodeVmManifest(bytes, ctx);
      return {
        kind,
        version: VERSION,
        ...m,
        parentManifestHash: hex(m.parentManifestHash),
        supersedesHash: hex(m.supersedesHash),
        files: m.files.map((f) => ({ name: f.name, bytes: f.bytes, hash: hex(f.hash) })),
      };
    }
    case "INDX": {
      const ix = decodeIndex(bytes, ctx);
      const bl = ix.blocks;
      const runs: { firstPage: number; pageCount: number; firstSlot: number | "zero" }[] = [];
      for (let r = 0; r < ix.runs.length; r += 3) {
        const slot = ix.runs[r + 2]!;
        runs.push({
          firstPage: ix.runs[r]!,
          pageCount: ix.runs[r + 1]!,
          firstSlot: slot === ZERO_RUN ? "zero" : slot,
        });
      }
      return {
        kind,
        version: VERSION,
        epoch: ix.epoch,
        guestRamBytes: ix.guestRamBytes,
        pageSize: ix.pageSize,
        pagesPerBlock: ix.pagesPerBlock,
        full: ix.full,
        pagesFileBytes: ix.pagesFileBytes,
        blocks: Array.from(bl.offset, (offset, i) => ({
          offset,
          storedBytes: bl.storedBytes[i]!,
          pageCount: bl.pageCount[i]!,
          codec: bl.codec[i]!,
          hash: hex(bl.hash[i]!),
        })),
        runs,
      };
    }
    case "PAGE": {
      const { epoch } = decodePagesHeader(bytes, ctx);
      const payload = Buffer.from(
        bytes.buffer,
        bytes.byteOffset + HEADER_BYTES.PAGE,
        bytes.length - HEADER_BYTES.PAGE,
      );
      return { kind, version: VERSION, epoch, payloadBase64: payload.toString("base64") };
    }
    case "DEVS":
    case "CHAN": {
      const { epoch, payload } = decodeBlob(kind, bytes, ctx);
      return { kind, version: VERSION, epoch, payloadBase64: payload.toString("base64") };
    }
    default:
      throw new StoreArgumentError(`${path}: not a checkpoint store file (unknown magic)`, {
        path,
        offset: 0,
      });
  }
}

/** Encodes a decoded file back to bytes in the current format version. */
export function encodeFile(f: DecodedFile): Buffer {
  switch (f.kind) {
    case "STOR":
      return encodeStoreMarker(f);
    case "EPMF":
      return encodeGlobalManifest({
        epoch: f.epoch,
        createdAtMs: f.createdAtMs,
        vms: f.vms.map((v) => ({ vmId: v.vmId, manifestHash: big(v.manifestHash) })),
      });
    case "VMMF":
      return encodeVmManifest({
        ...f,
        parentManifestHash: big(f.parentManifestHash),
        supersedesHash: big(f.supersedesHash),
        files: f.files.map((x) => ({ name: x.name, bytes: x.bytes, hash: big(x.hash) })),
      });
    case "INDX":
      return encodeIndex({
        ...f,
        blocks: {
          offset: Float64Array.from(f.blocks, (b) => b.offset),
          storedBytes: Uint32Array.from(f.blocks, (b) => b.storedBytes),
          pageCount: Uint16Array.from(f.blocks, (b) => b.pageCount),
          codec: Uint8Array.from(f.blocks, (b) => b.codec),
          hash: BigUint64Array.from(f.blocks, (b) => big(b.hash)),
        },
        runs: Uint32Array.from(
          f.runs.flatMap((r) => [r.firstPage, r.pageCount, r.firstSlot === "zero" ? ZERO_RUN : r.firstSlot]),
        ),
      });
    case "PAGE":
      return Buffer.concat([encodePagesHeader(f.epoch), Buffer.from(f.payloadBase64, "base64")]);
    case "DEVS":
    case "CHAN":
      return encodeBlob(f.kind as BlobKind, f.epoch, Buffer.from(f.payloadBase64, "base64"));
  }
}
