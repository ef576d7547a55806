import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import { checkS3RetryVariables, createS3Client } from "../../src/archive/s3-client.js";
import { loadConfig } from "../../src/config.js";

/** The client's retry mode, a value or a provider of one. */
async function retryModeOf(client: ReturnType<typeof createS3Client>): Promise<string> {
  const mode = client.config.retryMode;
  return typeof mode === "string" ? mode : mode();
}

describe("S3 client: retries and timeouts", () => {
  const saved = { AWS_MAX_ATTEMPTS: process.env.AWS_MAX_ATTEMPTS, AWS_RETRY_MODE: process.env.AWS_RETRY_MODE };
  afterEach(() => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) {
        delete process.env[name];
      } else {
        process.env[name] = value;
      }
    }
  });

  test("without AWS_MAX_ATTEMPTS and AWS_RETRY_MODE: 3 attempts in standard mode", async () => {
    delete process.env.AWS_MAX_ATTEMPTS;
    delete process.env.AWS_RETRY_MODE;
    const client = createS3Client({ forcePathStyle: true });
    try {
      assert.equal(await client.config.maxAttempts(), 3);
      assert.equal(await retryModeOf(client), "standard");
    } finally {
      client.destroy();
    }
  });

  test("AWS_MAX_ATTEMPTS and AWS_RETRY_MODE are honoured, the standard AWS way", async () => {
    process.env.AWS_MAX_ATTEMPTS = "7";
    process.env.AWS_RETRY_MODE = "adaptive";
    const client = createS3Client({ forcePathStyle: false });
    try {
      assert.equal(await client.config.maxAttempts(), 7);
      assert.equal(await retryModeOf(client), "adaptive");
    } finally {
      client.destroy();
    }
  });

  test("a bad AWS_MAX_ATTEMPTS or AWS_RETRY_MODE is refused at once, naming the variable and the accepted form", () => {
    assert.doesNotThrow(() => checkS3RetryVariables({}));
    assert.doesNotThrow(() => checkS3RetryVariables({ AWS_MAX_ATTEMPTS: "1", AWS_RETRY_MODE: "legacy" }));
    for (const value of ["0", "-1", "two", "1.5"]) {
      assert.throws(() => checkS3RetryVariables({ AWS_MAX_ATTEMPTS: value }), {
        message: `AWS_MAX_ATTEMPTS=${JSON.stringify(value)} is invalid: expected an integer from 1 (attempts per S3 request, the first included)`,
      });
    }
    assert.throws(() => createS3Client({ forcePathStyle: true }, { AWS_RETRY_MODE: "fast" }), {
      message: 'AWS_RETRY_MODE="fast" is invalid: expected one of standard, adaptive, legacy',
    });
  });

  test("COGMENT_MODEL_REGISTRY_ARCHIVE_S3_TIMEOUT: 1m by default, a positive duration", () => {
    assert.equal(loadConfig({}).archiveS3TimeoutMs, 60_000);
    assert.equal(loadConfig({ COGMENT_MODEL_REGISTRY_ARCHIVE_S3_TIMEOUT: "2.5s" }).archiveS3TimeoutMs, 2500);
    assert.throws(() => loadConfig({ COGMENT_MODEL_REGISTRY_ARCHIVE_S3_TIMEOUT: "0" }), {
      name: "ConfigError",
      message:
        'COGMENT_MODEL_REGISTRY_ARCHIVE_S3_TIMEOUT="0" is invalid: shorter than 1ms; expected a positive Go duration such as 30s or 2m, at most 596h (units ns, us, ms, s, m, h)',
    });
  });
});
