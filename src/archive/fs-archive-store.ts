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
  /** Start-up scans in flight at once; startupScanConcurrency() by default. */
  readonly startupScanConcurrency?: number;
}

/**
 * How many of the start-up scan's file system requests (the listing's stat and info read per model,
 * the leftover clean-up's directory read per model) are in flight at once: a core fewer than the
 * machine has, at most libuv's 4 threads. The server binds and serves its first calls while the scan
 * runs (issue #15): queued all at once, a few hundred requests kept the thread pool busy on every
 * core, and each submission could hand the main thread's core to a thread it woke.
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
    ...createFsArchiveReads(root, warn, startupScans),
  };
}
