import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { RegistryClient } from "../support/registry-client.js";
import { startTestServer } from "../support/test-server.js";

// The server frees each received body message's buffer once its bytes are copied
// (src/rpc/release-received-bytes.ts): every byte must still land where it belongs.

const MiB = 1024 * 1024;
const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

/** Bytes that differ from one version and one position to the next. */
function versionData(size: number, seed: number): Buffer {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 131 + seed * 17 + (i >> 16)) % 251;
  return data;
}

test("concurrent uploads in 1 MiB, 64 KiB and odd-sized body messages: every version reads back exactly", async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const { client } = server;
  await client.createModel("released");
  const uploads = [
    { data: versionData(3 * MiB + 17, 1), chunkBytes: MiB },
    { data: versionData(2 * MiB, 2), chunkBytes: 64 * 1024 },
    { data: versionData(MiB + 5, 3), chunkBytes: 700_001 },
    { data: versionData(5 * MiB, 4), chunkBytes: MiB },
  ];
  const infos = await Promise.all(uploads.map(({ data, chunkBytes }) => client.publish("released", data, { chunkBytes })));
  assert.deepEqual(infos.map((info) => info.version_number).sort((a, b) => a - b), [1, 2, 3, 4]);
  for (const [i, info] of infos.entries()) {
    const expected = uploads[i]?.data as Buffer;
    assert.equal(info.data_hash, sha256(expected));
    assert.equal(Number(info.data_size), expected.length);
    const read = await client.retrieveData("released", info.version_number);
    assert.ok(read.equals(expected), `version ${info.version_number} reads back exactly`);
  }
});

test("gzip-compressed body messages (decompressed by grpc-js into buffers of their own): the version reads back exactly", async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const gzipClient = new RegistryClient(server.address, { "grpc.default_compression_algorithm": 2 });
  t.after(() => gzipClient.close());
  await server.client.createModel("gzipped");
  const data = versionData(3 * MiB, 9);
  const info = await gzipClient.publish("gzipped", data);
  assert.equal(info.version_number, 1);
  assert.equal(info.data_hash, sha256(data));
  assert.ok((await server.client.retrieveData("gzipped", 1)).equals(data));
});
