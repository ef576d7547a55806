/*
 * The S3 client of the archive. Region, credentials (variables, profiles, instance and container
 * roles) and the endpoint (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL) come from the SDK's standard
 * chain; retries are its standard mode (throttling, 5xx, timeouts and resets, with backoff).
 */
import { S3Client } from "@aws-sdk/client-s3";

/** A connection not made in this time fails (and is retried). */
const CONNECTION_TIMEOUT_MS = 5_000;
/** A request whose socket stays silent this long fails (and is retried). */
const SOCKET_IDLE_TIMEOUT_MS = 60_000;
/** Attempts per request, the first included: the SDK's default. */
export const S3_MAX_ATTEMPTS = 3;

export function createS3Client(options: { readonly forcePathStyle: boolean; readonly maxAttempts?: number }): S3Client {
  return new S3Client({
    forcePathStyle: options.forcePathStyle,
    retryMode: "standard",
    maxAttempts: options.maxAttempts ?? S3_MAX_ATTEMPTS,
    // The SDK builds its Node HTTP handler from these options.
    requestHandler: {
      connectionTimeout: CONNECTION_TIMEOUT_MS,
      requestTimeout: SOCKET_IDLE_TIMEOUT_MS,
      // Several multipart uploads and ranged reads at once.
      httpAgent: { keepAlive: true, maxSockets: 64 },
      httpsAgent: { keepAlive: true, maxSockets: 64 },
    },
  });
}
