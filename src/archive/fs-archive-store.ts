import type { ArchiveStore } from "./archive-store.js";
import type { ArchiveFileWriter } from "./archive-file-writer.js";
import { createFsArchiveReads } from "./fs-archive-reads.js";
import { createFsArchiveWrites } from "./fs-archive-writes.js";

export interface FsArchiveStoreOptions {
  readonly root: string;
  readonly writer: ArchiveFileWriter;
  readonly onWarning?: (message: string, details: Record<string, unknown>) => void;
  /**
   * Temporary files modified within this long are left alone at start: another instance sharing the
   * directory may be writing them. 0 (the default, one server per directory): every one is a leftover.
   */
  readonly leftoverMinAgeMs?: number;
  /** Model infos through the write-ahead journal (model-journal.ts); only where one process writes the archive. */
  readonly modelJournal?: boolean;
  /** The journal file's size (tests). */
  readonly journalBytes?: number;
}

/** The original server's archive directory layout on the local filesystem. */
export function createFsArchiveStore(options: FsArchiveStoreOptions): ArchiveStore {
  const { root, writer } = options;
  const warn = options.onWarning ?? ((): void => {});
  return {
    ...createFsArchiveWrites(root, writer, warn, {
      leftoverMinAgeMs: options.leftoverMinAgeMs ?? 0,
      modelJournal: options.modelJournal,
      journalBytes: options.journalBytes,
    }),
    ...createFsArchiveReads(root, warn),
  };
}
