import { type ModelRecord, type VersionRecord, lowerBound } from "../domain/index.js";
import { pageOf, parseHandle, resolveVersion, unchangedHandle } from "./version-selection.js";

export interface ModelPage {
  readonly models: readonly ModelRecord[];
  readonly nextHandle: string;
}

export interface VersionPage {
  readonly versions: readonly VersionRecord[];
  readonly nextHandle: string;
}

/**
 * The RetrieveVersionInfos selection among a model's versions (sorted by number): without explicit
 * numbers, the handle is the first version number of the page; with them, an offset into that list.
 */
export function selectVersionPage(
  modelId: string,
  all: readonly VersionRecord[],
  versionNumbers: readonly number[],
  count: number,
  handle: string,
): VersionPage {
  const parsedHandle = parseHandle("version_handle", handle);
  let versions: readonly VersionRecord[];
  if (versionNumbers.length === 0) {
    const start = lowerBound(all, parsedHandle ?? 0);
    versions = pageOf(all, start, count);
  } else {
    versions = pageOf(versionNumbers, parsedHandle ?? 0, count).map((n) => resolveVersion(modelId, all, n));
  }
  const last = versions[versions.length - 1];
  const nextHandle = last !== undefined ? String(last.versionNumber + 1) : unchangedHandle(handle);
  return { versions, nextHandle };
}
