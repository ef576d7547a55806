import { randomUUID } from "node:crypto";
import type { ArchiveStore } from "../archive/index.js";
import type { Logger } from "../logger.js";
import { writeFailureFields } from "./write-failure-fields.js";

/**
 * `.cogment-ts-single-mode-run` at the archive's root: a new value in every single-mode run that
 * changes something, durable before its first change. Instances sharing a Redis keep in Redis the
 * value they last brought Redis in line with; another value means a single-mode server ran on the
 * archive since, and its changes are brought into Redis before they serve (archive-sync.ts). Only
 * "another value" counts, so a value torn by a crash during its write (before any change) is harmless.
 */
export const SINGLE_MODE_RUN_KEY = "single-mode-run";

/** Writes this run's value; never rejects (a failure is one warning: the run goes on). */
export async function recordSingleModeRun(archive: ArchiveStore, log: Logger): Promise<void> {
  try {
    await archive.writeArchiveMeta(SINGLE_MODE_RUN_KEY, `started=${new Date().toISOString()} run=${randomUUID()}\n`);
  } catch (error) {
    log.warn(
      { file: `.cogment-ts-${SINGLE_MODE_RUN_KEY}`, ...writeFailureFields(error) },
      "could not record this single-mode run in the archive: instances sharing a Redis (COGMENT_MODEL_REGISTRY_REDIS_URL) started on this archive later will not see the models, versions and deletions of this run, and may hand out again its version numbers",
    );
  }
}

/** The value the last single-mode run wrote (trimmed), undefined if none did. */
export async function readSingleModeRun(archive: ArchiveStore): Promise<string | undefined> {
  return (await archive.readArchiveMeta(SINGLE_MODE_RUN_KEY))?.trim();
}
