/*
 * The S3 client of the archive. Region, credentials (variables, profiles, instance and container
 * roles), the endpoint (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL) and the retries (AWS_MAX_ATTEMPTS,
 * AWS_RETRY_MODE, or max_attempts/retry_mode of the profile) come from the SDK's standard chain;
 * without them, 3 attempts in standard mode (throttling, 5xx, timeouts and resets, with backoff).
 */
import { S3Client } from "@aws-sdk/client-s3";

/** A connection not made in this time fails (and is retried). */
export const S3_CONNECTION_TIMEOUT_MS = 5_000;
/** Default of COGMENT_MODEL_REGISTRY_ARCHIVE_S3_TIMEOUT: a request whose socket is silent this long fails (and is retried). */
export const S3_DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/** Attempts per request, the first included, when neither AWS_MAX_ATTEMPTS nor the profile says: the SDK's default. */
export const S3_DEFAULT_MAX_ATTEMPTS = 3;

const RETRY_MODES = ["standard", "adaptive", "legacy"] as const;

export interface S3ClientOptions {
  readonly forcePathStyle: boolean;
  /** Socket idle timeout of every request: while connecting is excluded, waiting for the reply and each pause in a body is not. */
  readonly idleTimeoutMs?: number;
}

/**
 * Checks AWS_MAX_ATTEMPTS and AWS_RETRY_MODE, which the SDK reads itself: it would report a bad
 * AWS_MAX_ATTEMPTS only at the first request, and take any unknown retry mode for "standard".
 */
export function checkS3RetryVariables(env: Readonly<Record<string, string | undefined>>): void {
  const attempts = env.AWS_MAX_ATTEMPTS?.trim() ?? "";
  if (attempts !== "" && !(/^[0-9]+$/.test(attempts) && Number(attempts) >= 1)) {
    throw new Error(`AWS_MAX_ATTEMPTS=${JSON.stringify(env.AWS_MAX_ATTEMPTS)} is invalid: expected an integer from 1 (attempts per S3 request, the first included)`);
  }
  const mode = env.AWS_RETRY_MODE?.trim() ?? "";
  if (mode !== "" && !(RETRY_MODES as readonly string[]).includes(mode)) {
    throw new Error(`AWS_RETRY_MODE=${JSON.stringify(env.AWS_RETRY_MODE)} is invalid: expected one of ${RETRY_MODES.join(", ")}`);
  }
}

export function createS3Client(options: S3ClientOptions, env: Readonly<Record<string, string | undefined>> = process.env): S3Client {
  checkS3RetryVariables(env);
  return new S3Client({
    forcePathStyle: options.forcePathStyle,
    // maxAttempts and retryMode are left to the SDK, which reads the variables and the profile.
    // The SDK builds its Node HTTP handler from these options. Its own default has no timeout but the
    // connection's: a store that accepts a request and then stalls would hang the call. socketTimeout
    // is the idle timeout (requestTimeout would only log a warning, and bound a part upload's whole
    // duration, which grows with the part and the link).
    requestHandler: {
      connectionTimeout: S3_CONNECTION_TIMEOUT_MS,
      socketTimeout: options.idleTimeoutMs ?? S3_DEFAULT_IDLE_TIMEOUT_MS,
      // Several multipart uploads and ranged reads at once.
      httpAgent: { keepAlive: true, maxSockets: 64 },
      httpsAgent: { keepAlive: true, maxSockets: 64 },
    },
  });
}
