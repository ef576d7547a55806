import type { ModelRecord, VersionRecord } from "../domain/index.js";

const spentNumberFailures = new WeakSet<object>();

/**
 * Marks the failure of a version write after which the store may hold the version's info (the commit
 * marker): its number must never be handed out again, even though the client was told the write
 * failed (a lost reply, a failed clean-up, another writer). See VersionNumberClaim.abandon.
 */
export function spendsNumber<E extends object>(error: E): E {
  spentNumberFailures.add(error);
  return error;
}

/** Whether a failed version write used up its number (see spendsNumber). */
export function isNumberSpent(error: unknown): boolean {
  return typeof error === "object" && error !== null && spentNumberFailures.has(error);
}

/**
 * What a writer sharing the archive with other instances (Redis mode) checks right before it puts a
 * version's files under their final names: that its claim of the version number still holds, with
 * time to spare. A stale writer (its claim ran out while it was paused or cut off from Redis) must
 * not put its files where the number's rightful writer puts, or has put, its own.
 */
export interface PlacementFence {
  /** Resolves when the claim is held with enough of its lease left for a few renames; rejects (ABORTED) otherwise. */
  confirm(): Promise<void>;
}

export interface LeftoverCleanupOptions {
  /** Milliseconds since the epoch: temporary files whose status changed (ctime) at or after it are kept. */
  readonly changedBefore?: number;
}

/** Persistent storage of models and archived versions, whatever the backend. */
export interface ArchiveStore {
  /** Creates the root if missing and restores what a crash may have lost (the model journal); reads may follow. */
  open(): Promise<void>;
  /**
   * After open(): removes the leftover temporary files of a crash. It never touches what reads look
   * at, so it may run beside them; a backend without such files has none. With `changedBefore`, a
   * temporary file changed at or after that time is left alone (a write of this process in progress).
   * Once close() was called it removes nothing more.
   */
  removeLeftovers?(options?: LeftoverCleanupOptions): Promise<void>;
  /** Starts, in the background, what open() left for after the server listens (the model journal's creation). */
  startDeferred?(): void;
  /** Flushes what the archive holds pending (the model journal's checkpoint); after the last write. */
  close?(): Promise<void>;
  /** Sorted (plain JS string order); a directory counts as a model only if it has `<id>/<id>.yaml`. */
  listModelIds(): Promise<string[]>;
  /** Undefined if there is no such model; an unreadable or unparsable model info is reported as a warning and also gives undefined. */
  readModel(modelId: string): Promise<ModelRecord | undefined>;
  /**
   * readModel of each id, in the same order, at the backend's own pace (the directory: a few reads
   * in flight at a time, see fs-archive-store.ts); without it, the ids are read with readModel all at once.
   */
  readModels?(modelIds: readonly string[]): Promise<(ModelRecord | undefined)[]>;
  /** Creates the model directory if needed. */
  writeModel(model: ModelRecord): Promise<void>;
  /**
   * writeModel that can be taken back, for a creation the shared state may still refuse after the
   * write (Redis mode: the model is being deleted through another instance, whose removal of the
   * model's files may already be done). Absent where a write cannot be told from a later one of the
   * same content (the S3 archive), and while the model journal is in use (single mode).
   */
  writeModelRevocably?(model: ModelRecord): Promise<RevocableWrite>;
  /** Removes the whole model directory; no error if missing. */
  deleteModel(modelId: string): Promise<void>;
  /**
   * Increasing version_number. A version info without its data file, a data file without info,
   * an info whose data file size differs from data_size, or an unparsable info is skipped
   * (reported as a warning), never returned.
   */
  listVersions(modelId: string): Promise<VersionRecord[]>;
  /**
   * Stores an archived version; the chunks' total size must equal `version.dataSize`. A failure after
   * which the store may hold the version's info is marked (isNumberSpent): the number is used up.
   * With a `fence` (several instances), the files are put in place only once it confirms, and never
   * over a file already there without a second confirmation (see fenced-placement.ts); in a bucket,
   * the info is written and a leftover data object replaced only once it confirms, and never over
   * another writer's object (conditional writes, see s3-version-writes.ts).
   */
  putVersion(version: VersionRecord, dataChunks: readonly Uint8Array[], fence?: PlacementFence): Promise<void>;
  /**
   * With a `fence`, putVersion (and a streamed commit) first writes a pending mark of the version
   * (layout.ts, pendingMarkPath), and listings skip the version until this removes it: call it once
   * the shared state committed the version, before a client is told so. A version whose writer died
   * before (its commit script never ran, or ran just before) is thus never listed from the archive
   * (an import into an empty Redis, single mode). No error if there is no mark.
   */
  markCommitted?(modelId: string, versionNumber: number): Promise<void>;
  /**
   * Starts writing an archived version's data as it arrives, for versions too large to hold in
   * memory: nothing is visible until commit, and abort leaves nothing behind.
   */
  beginVersionData(modelId: string): Promise<StreamedVersionData>;
  /** No error if missing. */
  deleteVersion(modelId: string, versionNumber: number): Promise<void>;
  /** Opens the data of an archived version for reading; NOT_FOUND if it has no data. */
  openVersionData(modelId: string, versionNumber: number): Promise<VersionDataReader>;
  /** Small per-model metadata files of ours (e.g. "next-version"), stored so they never disturb the original layout. */
  readMeta(modelId: string, key: string): Promise<string | undefined>;
  writeMeta(modelId: string, key: string, value: string): Promise<void>;
  /** Small archive-wide metadata values of ours (e.g. "single-mode-run"), beside the model directories, never one of them. */
  readArchiveMeta(key: string): Promise<string | undefined>;
  /**
   * Replaces an archive-wide metadata value, durably (flushed) before it resolves. A crash during the
   * write may leave a mix of the previous value and the new one.
   */
  writeArchiveMeta(key: string, value: string): Promise<void>;
  /**
   * Overwrites a small metadata value in place (no temporary file, no rename), for values written
   * often. Without `durable` it only reaches the kernel's page cache: it survives a crash of the
   * process, not necessarily one of the machine. readMeta may return it with trailing padding.
   * A value written at once, on the calling thread (the directory store's page-cache write), returns
   * META_WRITTEN: callers may take that as done without waiting a turn.
   */
  overwriteMeta(modelId: string, key: string, value: string, options: { readonly durable: boolean }): Promise<void>;
  /**
   * True when a metadata write is a request to a remote store (an object store's PUT), done only once
   * acknowledged: a caller writing at every commit then writes in the background rather than wait
   * a round trip each time (version-numbering.ts says what it then trusts after a start).
   */
  readonly remoteMeta?: boolean;
  /** What it stores a version as, named in messages: "objects" in a bucket; absent: "files" (a directory). */
  readonly storedItems?: "objects";
}

/** A write that can be taken back (see ArchiveStore.writeModelRevocably). */
export interface RevocableWrite {
  /**
   * Removes the file written, only while it is still that file (never one another writer put there
   * since), then its model's directory if that left it empty. Best effort: never rejects.
   */
  revoke(): Promise<void>;
}

export interface VersionDataReader {
  readonly size: number;
  /** Where the data is (a file path), for log lines. */
  readonly location: string;
  /** Reads up to target.byteLength bytes at position into target; resolves to the count read (0 at end). */
  read(target: Uint8Array, position: number): Promise<number>;
  close(): Promise<void>;
}

export interface StreamedVersionData {
  /** Appends data in order; the chunks may be reused once the promise resolves. */
  append(chunks: readonly Uint8Array[]): Promise<void>;
  /** Puts the data and then its info in place; the data's size must equal `version.dataSize`. Failures and `fence` as putVersion's. */
  commit(version: VersionRecord, fence?: PlacementFence): Promise<void>;
  /** Removes what was written. */
  abort(): Promise<void>;
}

/**
 * What overwriteMeta returns for a value it wrote before returning: always this one settled
 * promise, so a caller writing at every commit (version-numbering.ts) can tell and go on at once,
 * with no promise, reaction or turn per write.
 */
export const META_WRITTEN: Promise<void> = Promise.resolve();
