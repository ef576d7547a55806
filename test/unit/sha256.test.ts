import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { SHA256_IMPLEMENTATIONS, createSha256 } from "../../src/data/sha256.js";

const reference = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

describe("createSha256", () => {
  for (const implementation of SHA256_IMPLEMENTATIONS) {
    test(`${implementation}: one segment, several, none, and views of shared memory give the standard digest`, async () => {
      const sha256 = await createSha256(implementation);
      const data = Buffer.from(Array.from({ length: 5000 }, (_, index) => (index * 7) % 256));
      assert.equal(sha256([data]), reference(data));
      assert.equal(sha256([data.subarray(0, 1), data.subarray(1, 4096), data.subarray(4096)]), reference(data));
      assert.equal(sha256([]), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
      assert.equal(sha256([Buffer.alloc(0)]), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
      const shared = Buffer.from(new SharedArrayBuffer(6000));
      data.copy(shared, 1000);
      assert.equal(sha256([shared.subarray(1000)]), reference(data));
      assert.equal(sha256([shared.subarray(1000, 3000), shared.subarray(3000)]), reference(data));
    });
  }
});
