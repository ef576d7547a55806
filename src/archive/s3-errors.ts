/*
 * S3 failures as registry errors, at the edge of the S3 backend: by the time one reaches here the SDK
 * has already retried what its standard retry strategy retries (throttling, 5xx, timeouts, resets).
 */
import { S3ServiceException } from "@aws-sdk/client-s3";
import { Code, RegistryError } from "../errors/index.js";

const PERMISSION_ERRORS = new Set(["AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "AllAccessDisabled"]);

export function httpStatusOf(error: unknown): number | undefined {
  if (error instanceof S3ServiceException) {
    return error.$metadata.httpStatusCode;
  }
  const metadata = (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata;
  return metadata?.httpStatusCode;
}

export const isNotFound = (error: unknown): boolean =>
  httpStatusOf(error) === 404 || (error instanceof Error && (error.name === "NoSuchKey" || error.name === "NotFound"));

export const isPreconditionFailed = (error: unknown): boolean => httpStatusOf(error) === 412 || (error instanceof Error && error.name === "PreconditionFailed");

/**
 * 409 ConditionalRequestConflict: a conditional write met another write of the same key in flight
 * (AWS asks to try again). The SDK's retries do not cover it.
 */
export const isConditionalConflict = (error: unknown): boolean => httpStatusOf(error) === 409;

/** The store's own words: its error code and message, or the network error. */
export function s3Reason(error: unknown): string {
  if (!(error instanceof Error)) {
    return String(error);
  }
  const status = httpStatusOf(error);
  const attempts = (error as { $metadata?: { attempts?: number } }).$metadata?.attempts;
  const code = (error as { code?: unknown }).code;
  const name = typeof code === "string" && error.name === "Error" ? code : error.name;
  const parts = [`${name}: ${error.message || "(no message)"}`];
  if (status !== undefined) {
    parts.push(`HTTP ${status}`);
  }
  if (attempts !== undefined && attempts > 1) {
    parts.push(`after ${attempts} attempts`);
  }
  return parts.join(", ");
}

/**
 * What a 412 means depends on the request: on a conditional write (`If-None-Match: *`) another writer
 * holds the key; on a read pinned to an ETag (`If-Match`) the object changed since it was opened.
 */
export type PreconditionMeaning = "key-taken" | "object-changed";

/** Maps an S3 failure of `what` on `bucket` to the status a client gets. */
export function toS3RegistryError(error: unknown, what: string, bucket: string, precondition: PreconditionMeaning = "key-taken"): RegistryError {
  if (error instanceof RegistryError) {
    return error;
  }
  const status = httpStatusOf(error);
  const name = error instanceof Error ? error.name : "";
  const message = `archive bucket "${bucket}": ${what} failed: ${s3Reason(error)}`;
  let code: Code;
  if (PERMISSION_ERRORS.has(name) || status === 403) {
    code = Code.PERMISSION_DENIED;
  } else if (name === "KeyTooLongError") {
    code = Code.INVALID_ARGUMENT;
  } else if (status === 412 && precondition === "object-changed") {
    return new RegistryError(Code.ABORTED, `${message}; the object changed while it was being read, retry the call`, { cause: error });
  } else if (status === 412) {
    code = Code.ALREADY_EXISTS;
  } else if (status === 409) {
    return new RegistryError(Code.ABORTED, `${message}; another write of the object was in flight, retry the call`, { cause: error });
  } else if (status === undefined || status >= 500 || status === 429 || name === "NoSuchBucket" || name === "SlowDown" || name === "RequestTimeout") {
    // No HTTP status: the store was not reached (refused, reset, timed out).
    code = Code.UNAVAILABLE;
  } else {
    code = Code.INTERNAL;
  }
  return new RegistryError(code, message, { cause: error });
}
