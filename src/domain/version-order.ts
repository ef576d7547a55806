import type { VersionRecord } from "./records.js";

/*
 * A model's versions are kept sorted by number; both the registry and the in-process state look them
 * up here.
 */

/** Binary search by version number. */
export function findVersion(versions: readonly VersionRecord[], versionNumber: number): VersionRecord | undefined {
  const index = lowerBound(versions, versionNumber);
  const candidate = versions[index];
  return candidate?.versionNumber === versionNumber ? candidate : undefined;
}

/** Index of the first version whose number is >= versionNumber. */
export function lowerBound(versions: readonly VersionRecord[], versionNumber: number): number {
  let low = 0;
  let high = versions.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((versions[middle] as VersionRecord).versionNumber < versionNumber) {
      low = middle + 1;
    } else {
      high = middle;
    }
  }
  return low;
}
