/*
 * Issue #17: the CRC-32 of each data chunk a shared-mode writer stores with the version's info, and
 * the check a reader makes as the pieces pass (a chunk is served only once all of it matched).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { crc32 } from "node:zlib";
import { decodeStoredVersion, encodeVersionBody } from "../../src/redis/version-codec.js";
import { ChunkChecksumCheck, checksumsFit } from "../../src/state/chunk-checksum-check.js";

const hex = (value: number): string => `0x${value.toString(16).padStart(8, "0")}`;

/** The data's chunks of `chunkBytes` and their CRC-32. */
function checksumsOf(data: Buffer, chunkBytes: number): { chunkBytes: number; crc32: number[] } {
  const values: number[] = [];
  for (let start = 0; start < data.length; start += chunkBytes) {
    values.push(crc32(data.subarray(start, start + chunkBytes)));
  }
  return { chunkBytes, crc32: values };
}

/** Feeds `data` to the check in pieces of `pieceBytes`; the verified length after each. */
function feed(check: ChunkChecksumCheck, data: Buffer, pieceBytes: number): number[] {
  const verified: number[] = [];
  for (let start = 0; start < data.length; start += pieceBytes) {
    verified.push(check.add(data.subarray(start, start + pieceBytes)));
  }
  return verified;
}

describe("chunk checksums", () => {
  test("every chunk verified once its last byte passed, whatever the pieces' sizes", () => {
    const data = randomBytes(25);
    const checksums = checksumsOf(data, 10);
    assert.deepEqual(feed(new ChunkChecksumCheck(checksums, 25), data, 7), [0, 10, 20, 25]);
    assert.deepEqual(feed(new ChunkChecksumCheck(checksums, 25), data, 10), [10, 20, 25]);
    assert.deepEqual(feed(new ChunkChecksumCheck(checksums, 25), data, 1).filter((v, i, all) => v !== all[i - 1]), [0, 10, 20, 25]);
    const whole = new ChunkChecksumCheck(checksums, 25);
    assert.equal(whole.add(data), 25);
    assert.equal(whole.mismatch, undefined);
  });

  test("a changed byte stops the verified length at its chunk's start and names the chunk, its bytes and both CRCs", () => {
    const data = randomBytes(25);
    const checksums = checksumsOf(data, 10);
    const stored = Buffer.from(data);
    stored[14] = (data[14] as number) ^ 0x10;
    const check = new ChunkChecksumCheck(checksums, 25);
    assert.deepEqual(feed(check, stored, 4), [0, 0, 10, 10, 10, 10, 10]);
    assert.equal(
      check.mismatch,
      `chunk 1 (bytes 10 to 19) has CRC-32 ${hex(crc32(stored.subarray(10, 20)))}, its info says ${hex(checksums.crc32[1] as number)}`,
    );
    assert.equal(check.verified, 10);
  });

  test("chunks swapped between two versions are told apart", () => {
    const first = randomBytes(20);
    const second = randomBytes(20);
    const mixed = Buffer.concat([first.subarray(0, 10), second.subarray(10)]);
    const check = new ChunkChecksumCheck(checksumsOf(first, 10), 20);
    assert.equal(check.add(mixed), 10);
    assert.match(check.mismatch ?? "", /^chunk 1 \(bytes 10 to 19\) has CRC-32 0x[0-9a-f]{8}, its info says 0x[0-9a-f]{8}$/);
  });

  test("bytes beyond the last chunk are not checked (the reader fails a wrong size)", () => {
    const data = randomBytes(10);
    const check = new ChunkChecksumCheck(checksumsOf(data, 4), 10);
    assert.equal(check.add(Buffer.concat([data, Buffer.from("extra")])), 10);
    assert.equal(check.mismatch, undefined);
  });

  test("checksums fit only data of as many chunks as they have", () => {
    assert.equal(checksumsFit({ chunkBytes: 10, crc32: [1, 2, 3] }, 25, 3), true);
    assert.equal(checksumsFit({ chunkBytes: 10, crc32: [1, 2, 3] }, 30, 3), true);
    assert.equal(checksumsFit({ chunkBytes: 10, crc32: [1, 2, 3] }, 31, 3), false);
    assert.equal(checksumsFit({ chunkBytes: 10, crc32: [1, 2] }, 25, 3), false);
    assert.equal(checksumsFit({ chunkBytes: 10, crc32: [] }, 0, 0), false);
  });

  test("a version's info carries them through Redis, and one without them (an earlier build's) decodes without", () => {
    const version = {
      modelId: "m",
      creationTimestamp: 12n,
      archived: false,
      dataHash: "h",
      dataSize: 25,
      userData: { a: "b" },
    };
    const body = encodeVersionBody(version, 3, { chunkBytes: 10, crc32: [0, 4294967295, 7] });
    assert.equal(
      body,
      '"modelId":"m","creationTimestamp":"12","archived":false,"dataHash":"h","dataSize":25,"userData":{"a":"b"},"chunks":3,"chunkBytes":10,"chunkCrc32":[0,4294967295,7]}',
    );
    const stored = decodeStoredVersion(`{"versionNumber":4,"storedAtMs":5,${body}`);
    assert.deepEqual(stored.checksums, { chunkBytes: 10, crc32: [0, 4294967295, 7] });
    assert.equal(stored.chunkCount, 3);
    assert.equal(stored.record.versionNumber, 4);

    const older = decodeStoredVersion(`{"versionNumber":4,"storedAtMs":5,${encodeVersionBody(version, 3)}`);
    assert.equal(older.checksums, undefined);
    for (const [chunkBytes, crcs] of [
      ["10.5", "[1,2,3]"],
      ["0", "[1,2,3]"],
      ["10", "[1,2]"],
      ["10", "[1,-2,3]"],
      ["10", "[1,4294967296,3]"],
      ["10", '"1,2,3"'],
    ]) {
      const malformed = `{"versionNumber":4,"storedAtMs":5,"modelId":"m","creationTimestamp":"1","archived":false,"dataHash":"h","dataSize":25,"userData":{},"chunks":3,"chunkBytes":${chunkBytes},"chunkCrc32":${crcs}}`;
      assert.equal(decodeStoredVersion(malformed).checksums, undefined, `${chunkBytes} ${crcs}`);
    }
  });
});
