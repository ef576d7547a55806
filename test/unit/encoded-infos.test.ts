import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  RetrieveModelsReplySchema,
  RetrieveVersionInfosReplySchema,
  VersionUpdateReplySchema,
} from "../../src/gen/cogment/api/model_registry_pb.js";
import { EMPTY_USER_DATA, type ModelRecord, type VersionRecord } from "../../src/registry/index.js";
import { toWireModel, toWireVersion } from "../../src/rpc/convert.js";
import { encodedModelInfo, encodedVersionInfo, framedInfosReply, framedVersionReply } from "../../src/rpc/encoded-infos.js";
import { isWellFormedFrame } from "../../src/rpc/pre-framed-messages.js";

const HASH = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

function version(overrides: Partial<VersionRecord>): VersionRecord {
  return {
    modelId: "model",
    versionNumber: 1,
    creationTimestamp: 1_764_000_000_000_000_000n,
    archived: false,
    dataHash: HASH,
    dataSize: 1024,
    userData: EMPTY_USER_DATA,
    ...overrides,
  };
}

/** Records that exercise every field's edge: empty, zero, the largest values, multi-byte UTF-8, long lengths. */
const VERSIONS: readonly VersionRecord[] = [
  version({}),
  version({ modelId: "", versionNumber: 0, creationTimestamp: 0n, dataHash: "", dataSize: 0 }),
  version({ versionNumber: 4_294_967_295, creationTimestamp: 18_446_744_073_709_551_615n, dataSize: Number.MAX_SAFE_INTEGER }),
  version({ archived: true, versionNumber: 127, dataSize: 128 }),
  version({ versionNumber: 128, dataSize: 16_383 }),
  version({ modelId: "modèle/😀-ü", userData: { "clé é": "valeur 😀", "": "", empty: "", 日本: "語".repeat(50) } }),
  version({ userData: { step: "1", lr: "0.001", "0": "zero first", b: "insertion order kept" } }),
  version({ modelId: "m".repeat(250), userData: { blob: "x".repeat(70_000) } }),
  version({ userData: Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`key-${i}`, `value-${i}`])) }),
  version({ versionNumber: 2_147_483_648, creationTimestamp: 1n, dataSize: 2 ** 32 }),
  version({ versionNumber: 2_147_483_647, creationTimestamp: 2n ** 63n, dataSize: 2 ** 32 + 1 }),
  version({ versionNumber: 16_384, dataSize: 2 ** 32 - 1, userData: { k: "v".repeat(200), ["κ".repeat(70)]: "" } }),
];

const MODELS: readonly ModelRecord[] = [
  { modelId: "model", userData: EMPTY_USER_DATA },
  { modelId: "", userData: EMPTY_USER_DATA },
  { modelId: "modèle/😀", userData: { "clé é": "valeur 😀", "": "" } },
  { modelId: "wide", userData: { blob: "y".repeat(300_000) } },
];

function payload(frame: Buffer): Buffer {
  assert.ok(isWellFormedFrame(frame), "an uncompressed gRPC frame whose prefix gives its length");
  return frame.subarray(5);
}

describe("replies assembled from cached info encodings", () => {
  test("each ModelVersionInfo encoding is protobuf-es's, and is made once per record", () => {
    for (const record of VERSIONS) {
      const expected = Buffer.from(toBinary(VersionUpdateReplySchema, create(VersionUpdateReplySchema, { versionInfo: toWireVersion(record) })));
      const encoded = encodedVersionInfo(record);
      assert.equal(encodedVersionInfo(record), encoded);
      assert.deepEqual(payload(framedInfosReply([encoded])), expected);
    }
  });

  test("CreateVersion's reply written straight into its frame: protobuf-es's bytes, before and after the encoding is kept", () => {
    for (const overrides of VERSIONS) {
      const record = { ...overrides }; // a record no other test has encoded yet
      const expected = Buffer.from(toBinary(VersionUpdateReplySchema, create(VersionUpdateReplySchema, { versionInfo: toWireVersion(record) })));
      const direct = framedVersionReply(record);
      assert.deepEqual(payload(direct), expected);
      assert.deepEqual(payload(framedInfosReply([encodedVersionInfo(record)])), expected);
      const fromKept = framedVersionReply(record);
      assert.notEqual(fromKept, direct);
      assert.deepEqual(fromKept, direct);
    }
  });

  test("RetrieveVersionInfosReply: byte for byte protobuf-es's, for 0, 1 and many infos and any handle", () => {
    const handles = ["", "0", "2", "4294967296", "handle é😀", "h".repeat(200)];
    const lists = [[], [VERSIONS[0]], VERSIONS, [...VERSIONS].reverse(), [VERSIONS[1], VERSIONS[1]]] as VersionRecord[][];
    for (const versions of lists) {
      for (const handle of handles) {
        const expected = toBinary(
          RetrieveVersionInfosReplySchema,
          create(RetrieveVersionInfosReplySchema, { versionInfos: versions.map(toWireVersion), nextVersionHandle: handle }),
        );
        const frame = framedInfosReply(versions.map(encodedVersionInfo), handle);
        assert.deepEqual(payload(frame), Buffer.from(expected), `${versions.length} infos, handle ${JSON.stringify(handle)}`);
      }
    }
  });

  test("RetrieveModelsReply: byte for byte protobuf-es's", () => {
    for (const models of [[], [MODELS[0]], MODELS] as ModelRecord[][]) {
      for (const handle of ["", "1", "100"]) {
        const expected = toBinary(
          RetrieveModelsReplySchema,
          create(RetrieveModelsReplySchema, { modelInfos: models.map(toWireModel), nextModelHandle: handle }),
        );
        assert.deepEqual(payload(framedInfosReply(models.map(encodedModelInfo), handle)), Buffer.from(expected));
      }
    }
  });

  test("the replies decode back to the records", () => {
    const reply = fromBinary(RetrieveVersionInfosReplySchema, payload(framedInfosReply(VERSIONS.map(encodedVersionInfo), "10")));
    assert.equal(reply.nextVersionHandle, "10");
    assert.deepEqual(
      reply.versionInfos.map((info) => ({ ...info, dataSize: Number(info.dataSize) })),
      VERSIONS.map((record) => ({ ...toWireVersion(record), dataSize: Number(record.dataSize) })),
    );
    const update = fromBinary(VersionUpdateReplySchema, payload(framedInfosReply([encodedVersionInfo(VERSIONS[5] as VersionRecord)])));
    assert.equal(update.versionInfo?.modelId, "modèle/😀-ü");
    assert.deepEqual(update.versionInfo?.userData, { "clé é": "valeur 😀", "": "", empty: "", 日本: "語".repeat(50) });
  });

  test("a record is encoded as it was when first seen: records are immutable, a changed model is a new record", () => {
    const first: ModelRecord = { modelId: "m", userData: { a: "1" } };
    const second: ModelRecord = { modelId: "m", userData: { a: "2" } };
    assert.notEqual(encodedModelInfo(first), encodedModelInfo(second));
    assert.equal(fromBinary(RetrieveModelsReplySchema, payload(framedInfosReply([encodedModelInfo(second)]))).modelInfos[0]?.userData.a, "2");
  });
});
