import { cutText } from "../cut-text.js";
import { invalidArgument, notFound } from "../errors/index.js";
import { type VersionRecord, findVersion } from "../domain/index.js";

/**
 * The largest handles the original accepts (its strconv.ParseUint / ParseInt of 64 bits): past
 * them it answers INVALID_ARGUMENT, below them a handle past the end gives an empty page.
 */
export const MAX_HANDLE = {
  version_handle: 18_446_744_073_709_551_615n,
  model_handle: 9_223_372_036_854_775_807n,
} as const;

export type HandleField = keyof typeof MAX_HANDLE;

/** Parses a paging handle: empty → undefined, else a decimal integer from 0 to MAX_HANDLE[field]. */
export function parseHandle(field: HandleField, handle: string): number | undefined {
  if (handle === "") {
    return undefined;
  }
  if (!/^[0-9]+$/.test(handle)) {
    throw invalidArgument(`${field} "${truncate(handle)}" is invalid: expected a non-negative decimal integer or ""`);
  }
  // Compared by length first: BigInt() of a handle of millions of digits takes seconds.
  const digits = withoutLeadingZeros(handle);
  if (digits.length > MAX_HANDLE_DIGITS[field] || BigInt(digits) > MAX_HANDLE[field]) {
    throw invalidArgument(`${field} "${truncate(handle)}" is out of range: expected a decimal integer from 0 to ${MAX_HANDLE[field]} or ""`);
  }
  // Handles past 2^53 only point past the end: as an index, MAX_SAFE_INTEGER does the same.
  return Math.min(Number(handle), Number.MAX_SAFE_INTEGER);
}

const MAX_HANDLE_DIGITS: Readonly<Record<HandleField, number>> = {
  version_handle: String(MAX_HANDLE.version_handle).length,
  model_handle: String(MAX_HANDLE.model_handle).length,
};

/** A decimal integer's digits without its leading zeros ("000" → "0"). */
function withoutLeadingZeros(decimal: string): string {
  return decimal.replace(/^0+(?=[0-9])/, "");
}

/** The next handle of an empty page: the handle given (parsed already), as a plain decimal ("" → "0"), never rounded. */
export function unchangedHandle(handle: string): string {
  return handle === "" ? "0" : withoutLeadingZeros(handle);
}

/** The page [offset, offset + count) of `items`; count 0 means no limit. Out of range → empty page. */
export function pageOf<T>(items: readonly T[], offset: number, count: number): readonly T[] {
  if (offset >= items.length) {
    return [];
  }
  return items.slice(offset, count === 0 ? undefined : offset + count);
}

function truncate(text: string): string {
  return text.length > 40 ? `${cutText(text, 40)}…` : text;
}

export function describeVersionNumber(versionNumber: number): string {
  return versionNumber < 0 ? `${versionNumber} (the ${ordinalFromEnd(-versionNumber)})` : String(versionNumber);
}

function ordinalFromEnd(n: number): string {
  if (n === 1) {
    return "latest";
  }
  const suffix = n % 100 >= 11 && n % 100 <= 13 ? "th" : (["th", "st", "nd", "rd"][n % 10] ?? "th");
  return `${n}${suffix} to last`;
}

/**
 * Finds version `versionNumber` (or, when negative, the n-th to last) among
 * `versions` (sorted by increasing number). Throws NOT_FOUND naming what is missing.
 */
export function resolveVersion(modelId: string, versions: readonly VersionRecord[], versionNumber: number): VersionRecord {
  let found: VersionRecord | undefined;
  if (versionNumber < 0) {
    found = versions[versions.length + versionNumber];
  } else if (versionNumber > 0) {
    found = findVersion(versions, versionNumber);
  }
  if (found === undefined) {
    const known = versions.length === 0 ? "it has no versions" : `it has ${versions.length} version(s)`;
    throw notFound(
      `version ${describeVersionNumber(versionNumber)} of model "${modelId}" not found (${known}; transient versions may have been evicted)`,
    );
  }
  return found;
}
