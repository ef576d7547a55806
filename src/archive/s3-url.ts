/** `s3://bucket[/prefix]`, the value of COGMENT_MODEL_REGISTRY_ARCHIVE_URL. */
export interface S3Location {
  readonly bucket: string;
  /** "" or ends with "/": prepended to every key, so `<prefix><model_id>/...`. */
  readonly prefix: string;
}

/** S3's bucket naming rules (3–63 characters, lowercase letters, digits, dots and hyphens); also MinIO's. */
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Parses `s3://bucket[/prefix]`; throws an Error whose message says what is wrong. */
export function parseS3Url(text: string): S3Location {
  const match = /^s3:\/\/([^/?#]*)(?:\/([^?#]*))?$/s.exec(text);
  if (match === null) {
    throw new Error("not of the form s3://bucket[/prefix]");
  }
  const [, bucket = "", rawPrefix = ""] = match;
  if (!BUCKET_NAME.test(bucket) || bucket.includes("..")) {
    throw new Error(`bucket name ${JSON.stringify(bucket)} is not a valid S3 bucket name`);
  }
  const segments = rawPrefix.split("/").filter((segment) => segment !== "");
  if (segments.some((segment) => segment === "." || segment === "..")) {
    throw new Error(`prefix ${JSON.stringify(rawPrefix)} contains a "." or ".." segment`);
  }
  return { bucket, prefix: segments.length === 0 ? "" : `${segments.join("/")}/` };
}

export function formatS3Location(location: S3Location): string {
  return `s3://${location.bucket}/${location.prefix}`;
}
