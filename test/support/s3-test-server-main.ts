/*
 * Entry of the S3-protocol test server process (s3rver with the fixes of s3rver-patches.ts), started
 * by s3-test-server.ts: `node --openssl-legacy-provider s3-test-server-main.js <directory> [bucket...]`.
 * Listens on a free loopback port and prints one JSON line with it.
 */
import { loadPatchedS3rver } from "./s3rver-patches.js";

const [directory, ...buckets] = process.argv.slice(2);
if (directory === undefined) {
  process.stderr.write("usage: s3-test-server-main <directory> [bucket...]\n");
  process.exit(2);
}
const server = loadPatchedS3rver().create({
  address: "127.0.0.1",
  port: 0,
  directory,
  silent: true,
  // s3rver signs a bucket request's path without the trailing slash the SDK signs (`/bucket/`), so
  // every ListObjectsV2 would fail with SignatureDoesNotMatch; the access key is still checked.
  allowMismatchedSignatures: true,
  configureBuckets: buckets.map((name) => ({ name, configs: [] })),
});
const { port } = await server.run();
process.stdout.write(`${JSON.stringify({ s3TestServer: "listening", port })}\n`);
