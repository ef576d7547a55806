import { availableParallelism } from "node:os";
import type { ArchiveStore } from "./archive-store.js";
import type { ArchiveFileWriter } from "./archive-file-writer.js";
import { createConcurrencyLimit } from "./concurrency-limit.js";
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
  /** The leftover clean-up's requests in flight at once; startupScanConcurrency() by default. */
  readonly startupScanConcurrency?: number;
}

/**
 * How many of the leftover clean-up's file system requests (a directory read per model, a removal per
 * leftover) are in flight at once: a core fewer than the machine has, at most libuv's 4 threads. It
 * runs in the background after the start (issue #15); queued all at once, a few hundred requests kept
 * the thread pool busy on every core, and each submission could hand the main thread's core to a
 * thread it woke. (The model listing reads synchronously in turns: fs-archive-reads.ts.)
 */
export function startupScanConcurrency(cores: number = availableParallelism()): number {
  return Math.max(1, Math.min(4, cores - 1));
}

/** The original server's archive directory layout on the local filesystem. */
export function createFsArchiveStore(options: FsArchiveStoreOptions): ArchiveStore {
  const { root, writer } = options;
  const warn = options.onWarning ?? ((): void => {});
  const startupScans = createConcurrencyLimit(options.startupScanConcurrency ?? startupScanConcurrency());
  return {
    ...createFsArchiveWrites(root, writer, warn, {
      leftoverMinAgeMs: options.leftoverMinAgeMs ?? 0,
      modelJournal: options.modelJournal,
      journalBytes: options.journalBytes,
      startupScans,
    }),
    ...createFsArchiveReads(root, warn),
  };
}
