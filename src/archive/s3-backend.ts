/**
 * The S3 archive backend's entry points, in one module that the core imports only when the archive
 * is a bucket: the AWS SDK takes 100-250 ms to load, which a server on a directory never pays.
 */
export { createS3ArchiveStore } from "./s3-archive-store.js";
export { createS3Client } from "./s3-client.js";
