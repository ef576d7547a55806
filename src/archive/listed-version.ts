import type { VersionRecord } from "../domain/index.js";
import { errorMessage } from "./errno.js";
import { decodeVersionInfo } from "./yaml-codec.js";

/** A listed version that is not served, with why (logged as a warning). */
export interface SkippedVersion {
  readonly skipped: string;
  readonly details: Record<string, unknown>;
}

/** How one backend reaches a listed version's two files (or objects). */
export interface ListedVersionFiles {
  /** How the backend names a location in a log line: "path" for files, "key" for objects. */
  readonly locationName: "path" | "key";
  readonly infoLocation: string;
  readonly dataLocation: string;
  readonly hasInfo: boolean;
  readonly hasData: boolean;
  /** The info's text; undefined when it vanished since the listing. */
  readInfo(): Promise<string | undefined>;
  /** The data's size in bytes, or why it cannot be served. */
  dataSize(): Promise<number | { readonly problem: string; readonly error?: string }>;
  /**
   * Present when the version has a pending mark (layout.ts, pendingMarkPath): reads its text
   * (undefined when it vanished since the listing: the commit completed meanwhile).
   */
  readonly pendingMark?: (() => Promise<string | undefined>) | undefined;
}

/** Why a version whose commit never completed is skipped (its info is still the text of its pending mark). */
export const UNCOMMITTED_VERSION = "its commit did not complete (an instance stopped between putting its files in place and committing it)";

/**
 * The version a listing found, or why it is skipped: both files present, an info that parses and
 * names this version, data of the size its info says. Shared by every archive backend, so each
 * skips exactly the same versions.
 */
export async function loadListedVersion(
  modelId: string,
  versionNumber: number,
  files: ListedVersionFiles,
): Promise<VersionRecord | SkippedVersion> {
  const at = (location: string): Record<string, unknown> => ({ [files.locationName]: location });
  const skip = (reason: string, details: Record<string, unknown>): SkippedVersion => ({
    skipped: `archived version skipped: ${reason}`,
    details: { modelId, versionNumber, ...details },
  });
  if (!files.hasInfo) {
    return skip("data file without version info", at(files.dataLocation));
  }
  if (!files.hasData) {
    return skip("version info without data file", at(files.infoLocation));
  }
  let version: VersionRecord;
  try {
    const text = await files.readInfo();
    if (text === undefined) {
      return skip("version info without data file", at(files.infoLocation));
    }
    if (files.pendingMark !== undefined) {
      let mark: string | undefined;
      try {
        mark = await files.pendingMark();
      } catch (error) {
        return skip(UNCOMMITTED_VERSION, { ...at(files.infoLocation), error: `its pending mark cannot be read: ${errorMessage(error)}` });
      }
      // Another text: the number was written again since, by a writer that leaves no mark (single mode, the original server).
      if (mark === text) {
        return skip(UNCOMMITTED_VERSION, at(files.infoLocation));
      }
    }
    version = decodeVersionInfo(text);
  } catch (error) {
    return skip("unreadable version info", { ...at(files.infoLocation), error: errorMessage(error) });
  }
  if (version.modelId !== modelId || version.versionNumber !== versionNumber) {
    return skip("version info names another version", {
      ...at(files.infoLocation),
      foundModelId: version.modelId,
      foundVersionNumber: version.versionNumber,
    });
  }
  const size = await files.dataSize();
  if (typeof size !== "number") {
    return skip(size.problem, { ...at(files.dataLocation), ...(size.error === undefined ? {} : { error: size.error }) });
  }
  if (size !== version.dataSize) {
    return skip("data file size differs from data_size", {
      ...at(files.dataLocation),
      expectedSize: version.dataSize,
      actualSize: size,
    });
  }
  return version;
}

/** The versions a listing loaded, in order; each skipped one is reported through warn, in version order too. */
export function keepServable(
  loaded: readonly (VersionRecord | SkippedVersion)[],
  warn: (message: string, details: Record<string, unknown>) => void,
): VersionRecord[] {
  const versions: VersionRecord[] = [];
  for (const result of loaded) {
    if ("skipped" in result) {
      warn(result.skipped, result.details);
    } else {
      versions.push(result);
    }
  }
  return versions;
}
