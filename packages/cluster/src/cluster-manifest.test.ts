import { describe, expect, it } from "vitest";
import {
  CLUSTER_MANIFEST_FORMAT,
  type ClusterManifest,
  decodeClusterManifest,
  encodeClusterManifest,
} from "./cluster-manifest.js";

const m: ClusterManifest = {
  format: CLUSTER_MANIFEST_FORMAT,
  epoch: 7,
  engine: "cow",
  hosts: [
    { hostId: "h1", vms: ["vm1", "vm2"] },
    { hostId: "h2", vms: ["vm3"] },
  ],
  committedAt: "2026-12-03T14:00:00.000Z",
};

describe("cluster manifest", () => {
  it("round-trips with its checksum", () => {
    expect(decodeClusterManifest(encodeClusterManifest(m), "/x/7.json", 7)).toEqual(m);
  });

  it("refuses a changed field, naming file and reason", () => {
    const text = encodeClusterManifest(m).replace('"vm3"', '"vm4"');
    expect(() => decodeClusterManifest(text, "/x/7.json", 7)).toThrow(
      /cluster manifest \/x\/7\.json: checksum mismatch/,
    );
  });

  it("refuses a torn file, another epoch, a missing checksum and another format", () => {
    const text = encodeClusterManifest(m);
    expect(() => decodeClusterManifest(text.slice(0, 40), "/x/7.json", 7)).toThrow(/not JSON/);
    expect(() => decodeClusterManifest(text, "/x/8.json", 8)).toThrow(/holds epoch 7, expected 8/);
    const { checksum: _, ...noSum } = JSON.parse(text) as Record<string, unknown>;
    expect(() => decodeClusterManifest(JSON.stringify(noSum), "/x/7.json", 7)).toThrow(/no checksum/);
    expect(() =>
      decodeClusterManifest(JSON.stringify({ ...noSum, format: "vpc-cluster-epoch/1" }), "/x/7.json", 7),
    ).toThrow(/format "vpc-cluster-epoch\/1"/);
  });
});
