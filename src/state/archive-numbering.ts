import type { ArchiveStore } from "../archive/index.js";
import type { Logger } from "../logger.js";
import { readBootId } from "./boot-id.js";
import { readSingleModeRun } from "./single-mode-run.js";
import { MAX_VERSION_NUMBER, VERSION_NUMBER_BLOCK, VersionNumbering, writeSharedReservation } from "./version-numbering.js";

/** What the archive's numbering records say of one model. */
export interface ArchivedNumbering {
  /** The next number single mode would hand out. */
  readonly next: number;
  /** The next number the record names (whoever wrote it), undefined without a readable record. */
  readonly recorded: number | undefined;
}

/**
 * The archive's numbering records (version-numbering.ts) as the shared state needs them. Made by
 * core.ts, where single mode's numbering code is loaded anyway: the Redis state (loaded only in
 * shared mode) takes it as an option instead of importing that code, which would split it and what
 * it imports into chunks of their own that every start then reads (scripts/bundle.ts).
 */
export interface ArchiveNumbering {
  /** The numbering of a model whose highest archived version is `highestArchived`. */
  numberingOf(modelId: string, highestArchived: number): Promise<ArchivedNumbering>;
  /** Writes the records a block past `versionNumber` (at most past the last number); resolves to how far they reach. */
  reserveAbove(modelId: string, versionNumber: number): Promise<number>;
  /** The mark of the last single-mode run on the archive (single-mode-run.ts), undefined if none left one. */
  singleModeRun(): Promise<string | undefined>;
}

export function archiveNumbering(archive: ArchiveStore, log: Logger): ArchiveNumbering {
  let bootId: Promise<string | undefined> | undefined;
  return {
    async numberingOf(modelId, highestArchived) {
      const numbering = new VersionNumbering(modelId, { archive, log, bootId: await (bootId ??= readBootId()) });
      const saved = await numbering.readSaved();
      numbering.start(saved, highestArchived);
      return { next: numbering.next, recorded: saved.record?.next };
    },
    async reserveAbove(modelId, versionNumber) {
      const upTo = Math.min(versionNumber + VERSION_NUMBER_BLOCK, MAX_VERSION_NUMBER + 1);
      await writeSharedReservation(archive, modelId, upTo);
      return upTo;
    },
    singleModeRun: () => readSingleModeRun(archive),
  };
}
