import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError, loadConfig } from "../../src/config.js";

describe("config: archive on S3", () => {
  test("ARCHIVE_URL gives the bucket and a normalised prefix; unset keeps the directory", () => {
    assert.equal(loadConfig({}).archiveS3, undefined);
    assert.deepEqual(loadConfig({ COGMENT_MODEL_REGISTRY_ARCHIVE_URL: "s3://my-bucket" }).archiveS3, { bucket: "my-bucket", prefix: "" });
    assert.deepEqual(loadConfig({ COGMENT_MODEL_REGISTRY_ARCHIVE_URL: "s3://my-bucket/team//models/" }).archiveS3, { bucket: "my-bucket", prefix: "team/models/" });
    assert.equal(loadConfig({}).archiveS3ForcePathStyle, false);
    assert.equal(loadConfig({ COGMENT_MODEL_REGISTRY_ARCHIVE_S3_FORCE_PATH_STYLE: "true" }).archiveS3ForcePathStyle, true);
  });

  test("a bad URL, and a URL with ARCHIVE_DIR, are errors naming the variables", () => {
    assert.throws(() => loadConfig({ COGMENT_MODEL_REGISTRY_ARCHIVE_URL: "s3://B_ad" }), {
      name: "ConfigError",
      message: 'COGMENT_MODEL_REGISTRY_ARCHIVE_URL="s3://B_ad" is invalid: bucket name "B_ad" is not a valid S3 bucket name; expected s3://bucket or s3://bucket/prefix (empty: the archive directory)',
    });
    assert.throws(() => loadConfig({ COGMENT_MODEL_REGISTRY_ARCHIVE_URL: "s3://bucket/a/../b" }), /contains a "\." or "\.\." segment/);
    assert.throws(
      () => loadConfig({ COGMENT_MODEL_REGISTRY_ARCHIVE_URL: "s3://bucket", COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: "/data" }),
      (error: unknown) => error instanceof ConfigError && error.message === "COGMENT_MODEL_REGISTRY_ARCHIVE_DIR and COGMENT_MODEL_REGISTRY_ARCHIVE_URL are both set: the archive is either a directory or a bucket; unset one of them",
    );
  });
});
