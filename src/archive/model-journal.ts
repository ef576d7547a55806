/**
 * The write-ahead journal of model files (`<archive>/.cogment-ts-journal`, format in
 * journal-codec.ts). A batch of model files (see group-commit.ts) costs ONE fdatasync instead of
 * two per file: the batch's records (path and exact bytes) are written into the journal and
 * flushed with one fdatasync, then the files are put in place without a flush: overwritten in
 * place when their blocks hold the new content (a rename over an existing file costs ~870 µs on
 * ext4, which flushes the replaced file's data: docs/performance.md), else written under a
 * temporary name before the journal's flush and renamed after it. The callers are answered then:
 * their change is durable in the journal. The journal file is preallocated (its blocks written
 * once) and overwritten in place, so its fdatasync has no metadata to flush.
 *
 * A checkpoint (when the journal is full, every CHECKPOINT_INTERVAL_MS with files pending, before
 * a model with journaled files is deleted, at close) flushes the files written since the previous
 * one and their directories, then resets the journal (a new epoch in its header). At open, before
 * serving, the journal is replayed: each complete record rewrites its file durably if the file's
 * content differs (the later record of a path wins); a torn tail is ignored; then it is reset. When
 * nothing was replayed the reset (or a fresh archive's creation of the journal) waits until after
 * listening or the first write (ready()), and after a clean stop it is skipped (open() says why).
 * On a read-only archive the records are kept, and no model write or deletion may go around them
 * (applyKeptRecords).
 * A stop refuses every operation asked once it began (UNAVAILABLE), after those queued before.
 *
 * Everything runs one operation at a time (batch, checkpoint, deletion), in call order.
 */
import { randomInt } from "node:crypto";
import { closeSync, constants, fstatSync, ftruncateSync, openSync, writeSync } from "node:fs";
import { mkdir, open, readFile, rename, rm, statfs } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import path from "node:path";
import { syncDirectory, writeFileAtomic, writeFilesAtomic, writeUnflushedTempFile } from "./atomic-write.js";
import { errorCode, errorMessage, isMissing } from "./errno.js";
import type { GroupedFile } from "./group-commit.js";
import { Code, RegistryError } from "../errors/index.js";
import { HEADER_BYTES, RECORDS_START, decodeHeader, decodeRecords, encodeHeader, encodeRecord, isCleanHeader, mayHoldRecordOf } from "./journal-codec.js";
import { modelIdProblem, modelInfoPath } from "./layout.js";

export const JOURNAL_FILE_NAME = ".cogment-ts-journal";
/** 1 MiB: about 2,000 records of a 500-byte model info (128 groups of 16) between two checkpoints. */
export const DEFAULT_JOURNAL_BYTES = 1024 * 1024;
/** The journal is made only where it takes at most this share of the free space: a small volume keeps its space for versions. */
const MIN_FREE_SPACE_FACTOR = 8;
const CHECKPOINT_INTERVAL_MS = 30_000;
const FILE_MODE = 0o640;
const DIRECTORY_MODE = 0o750;
const ZEROS_CHUNK_BYTES = 1024 * 1024;
/** Errors of an archive that cannot take the journal file; the server starts without it. */
const UNWRITABLE = new Set(["ENOSPC", "EROFS", "EACCES", "EPERM", "EDQUOT"]);

export interface ModelJournalOptions {
  readonly root: string;
  readonly capacityBytes?: number;
  readonly warn: (message: string, details: Record<string, unknown>) => void;
}

export interface ModelJournal {
  /**
   * Replays what a crash left in the journal, then resets it. Before anything else. On an archive
   * that cannot take the journal (full, read-only) it warns and `available()` is false; on a
   * read-only one it keeps the records it could neither void nor apply, and ready() stands in front
   * of every model write and deletion until they are voided. Making a new journal, or resetting one
   * that holds no record, is left for later: see ready().
   */
  open(): Promise<void>;
  /**
   * Resolves once the journal is made and reset (starting that now if open() left it for later);
   * rejects with UNAVAILABLE once close() began, and while records open() kept on a read-only
   * archive can be neither applied nor voided (see applyKeptRecords). Before available() and every
   * write or deletion: a model file written or removed beside a journal holding records would be
   * undone by the next start's replay.
   */
  ready(): Promise<void>;
  /** Starts what open() left for later, in the background (once the server listens). */
  startDeferred(): void;
  /** Whether writeBatch may be used (the journal is made and reset, and close() did not begin). */
  available(): boolean;
  /** Writes distinct files through the journal; resolves, in order, to each file's error or undefined (durable then). */
  writeBatch(files: readonly GroupedFile[]): Promise<(Error | undefined)[]>;
  /** Runs `action` (a deletion of the model directory `directory`) once no record in the journal can rewrite a file in it. */
  beforeRemoving<T>(directory: string, action: () => Promise<T>): Promise<T>;
  /** Flushes what was written since the last checkpoint and resets the journal. */
  checkpoint(): Promise<void>;
  /**
   * Waits for the queued operations (a preparation in flight too), then a last checkpoint if
   * anything is pending and the clean-stop mark; never fails (a failed checkpoint is replayed at the
   * next start). Every call made once it began is refused with UNAVAILABLE; nothing is created after.
   */
  close(): Promise<void>;
}

/** What a write or deletion gets once the journal is closing: never a closed file's EBADF. */
export const stoppingError = (): RegistryError =>
  new RegistryError(Code.UNAVAILABLE, "the model registry is stopping: model files can no longer be written; call again once the server is back");

/** Records a start on a read-only archive could not void: how many, how many it could not apply, and why. */
interface KeptRecords {
  readonly records: number;
  readonly unapplied: number;
  readonly cause: string;
}

const asError = (error: unknown): Error => (error instanceof Error ? error : new Error(String(error)));

async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let written = 0;
  while (written < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, written, bytes.byteLength - written, position + written);
    if (bytesWritten <= 0) {
      throw new Error(`journal write wrote no bytes at position ${position + written}`);
    }
    written += bytesWritten;
  }
}

/** The model id of `<id>/<id>.yaml`, the only path a record may name; undefined for any other. */
function modelIdOfInfoPath(relativePath: string): string | undefined {
  const [modelId, fileName, ...rest] = relativePath.split("/");
  if (modelId === undefined || rest.length > 0 || fileName !== `${modelId}.yaml` || modelIdProblem(modelId) !== undefined) {
    return undefined;
  }
  return modelId;
}

export function createModelJournal(options: ModelJournalOptions): ModelJournal {
  const { root, warn } = options;
  const capacity = options.capacityBytes ?? DEFAULT_JOURNAL_BYTES;
  const journalPath = path.join(root, JOURNAL_FILE_NAME);
  /** Whether open() made the journal usable (see withJournal for when the file is held open). */
  let opened = false;
  /** Valid records the last replay found, and the files it could not restore. */
  let replayedRecords = 0;
  /**
   * Records open() could neither void nor (all of them) apply, on a read-only archive: no model
   * info may then be written or deleted beside the journal, or the next start would replay the
   * records over it (see applyKeptRecords).
   */
  let kept: KeptRecords | undefined;
  let applyingKept: Promise<void> | undefined;
  const replayFailures: { path: string; code: string | undefined; message: string }[] = [];
  let epoch = 0;
  let end = RECORDS_START;
  /** A failed journal write may have left records of unanswered changes: reset before the next batch. */
  let resetNeeded = false;
  /** Files renamed into place since the last checkpoint, and the model directories they are in. */
  const unflushedFiles = new Set<string>();
  const journaledDirectories = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  /** Whether the header on disk carries the clean-stop mark for `epoch` (see open()). */
  let headerClean = false;
  /** close() began: every new operation is refused. */
  let stopping = false;
  let closed: Promise<void> | undefined;
  /**
   * Journaled files that could be put in place neither in place nor by the fallback (ENOSPC, EIO):
   * maybe torn, their record is their only good copy. No checkpoint resets the journal before each
   * is rewritten whole (or a later write of it succeeded); replay restores them after a crash.
   */
  const unrestored = new Map<string, Buffer>();

  let queue: Promise<unknown> = Promise.resolve();
  const serially = <T>(operation: () => Promise<T>): Promise<T> => {
    pending++;
    const result = queue.then(operation).finally(() => {
      pending--;
      if (pending === 0) {
        closeWhenIdle();
      }
    });
    queue = result.catch(() => {});
    return result;
  };

  /**
   * The journal file is kept open while operations follow each other (an open and a close per
   * batch cost ~10 % of the server's CPU under 16 clients, profiled) and closed once none is
   * queued: a file held open would block `mount -o remount,ro`.
   */
  let held: Promise<FileHandle> | undefined;
  let pending = 0;
  const closeWhenIdle = (): void => {
    // Two turns: the group commit starts its next batch on the next one (setImmediate).
    setImmediate(() =>
      setImmediate(() => {
        if (pending === 0 && held !== undefined) {
          const closing = held;
          held = undefined;
          closing.then((journal) => journal.close()).catch(() => {});
        }
      }),
    );
  };
  async function withJournal<T>(use: (journal: FileHandle) => Promise<T>): Promise<T> {
    held ??= open(journalPath, "r+");
    const opening = held;
    let journal: FileHandle;
    try {
      journal = await opening;
    } catch (error) {
      if (held === opening) {
        held = undefined;
      }
      throw error;
    }
    return use(journal);
  }

  async function reset(): Promise<void> {
    const next = (epoch + 1) >>> 0;
    try {
      await withJournal(async (journal) => {
        await writeFully(journal, encodeHeader(next), 0);
        await journal.datasync();
      });
    } catch (error) {
      // The header on disk may already be the next epoch's: no record may be appended before a reset succeeds.
      resetNeeded = true;
      throw error;
    }
    epoch = next;
    end = RECORDS_START;
    resetNeeded = false;
    headerClean = false;
    journaledDirectories.clear();
  }

  async function flushIgnoringMissing(flush: () => Promise<void>): Promise<void> {
    try {
      await flush();
    } catch (error) {
      if (!isMissing(error)) {
        throw error;
      }
    }
  }

  async function checkpointNow(): Promise<void> {
    for (const [filePath, content] of [...unrestored]) {
      // Throws while the disk still refuses it: the journal keeps the record.
      await writeFileAtomic(filePath, [content]);
      unrestored.delete(filePath);
    }
    const files = [...unflushedFiles];
    await Promise.all(
      files.map((file) =>
        flushIgnoringMissing(async () => {
          const fileHandle = await open(file, "r");
          try {
            await fileHandle.datasync();
          } finally {
            await fileHandle.close();
          }
        }),
      ),
    );
    const directories = new Set(files.map((file) => path.dirname(file)));
    await Promise.all([...directories].map((directory) => flushIgnoringMissing(() => syncDirectory(directory))));
    for (const file of files) {
      unflushedFiles.delete(file);
    }
    await reset();
  }

  async function replay(bytes: Buffer): Promise<void> {
    const headerEpoch = decodeHeader(bytes.subarray(0, HEADER_BYTES));
    if (headerEpoch === undefined) {
      // Not a header of ours (never written, torn, damaged): nothing to replay, and the reset's epoch
      // (epoch + 1) must be one no leftover record carries, or such a record could line up after new ones.
      epoch = epochBeforeUnused(bytes);
      return;
    }
    epoch = headerEpoch;
    const latest = new Map<string, Uint8Array>();
    for (const record of decodeRecords(bytes, headerEpoch).records) {
      latest.delete(record.relativePath); // the later record of a path wins
      latest.set(record.relativePath, record.content);
    }
    replayedRecords = latest.size;
    let rewritten = 0;
    /** Files found right: maybe only in the page cache of a process killed before its checkpoint. */
    const found = new Set<string>();
    for (const [relativePath, content] of latest) {
      const modelId = modelIdOfInfoPath(relativePath);
      if (modelId === undefined) {
        warn("journal record skipped: it does not name a model info file", { path: relativePath });
        continue;
      }
      const filePath = modelInfoPath(root, modelId);
      const current = await readFile(filePath).catch((error: unknown) => {
        if (isMissing(error)) {
          return undefined;
        }
        throw error;
      });
      if (current !== undefined && Buffer.compare(current, content) === 0) {
        found.add(filePath);
        continue;
      }
      const directory = path.dirname(filePath);
      try {
        await mkdir(directory, { mode: DIRECTORY_MODE });
        await syncDirectory(root);
      } catch (error) {
        if (errorCode(error) !== "EEXIST") {
          throw error;
        }
      }
      try {
        await writeFileAtomic(filePath, [content]);
      } catch (error) {
        // Said loudly; a read-only archive still starts, serving what it has (the journal is kept).
        warn("could not restore a model file from the journal; its last acknowledged change is missing", {
          path: filePath,
          error: errorMessage(error),
        });
        replayFailures.push({ path: filePath, code: errorCode(error), message: errorMessage(error) });
        continue;
      }
      rewritten++;
    }
    // The reset that follows makes the records void: what they describe must be on disk first.
    await Promise.all(
      [...found].map(async (filePath) => {
        const handle = await open(filePath, "r");
        try {
          await handle.datasync();
        } finally {
          await handle.close();
        }
      }),
    );
    const directories = new Set([...found].map((filePath) => path.dirname(filePath)));
    await Promise.all([...directories].map((directory) => syncDirectory(directory)));
    if (rewritten > 0) {
      warn("model files restored from the journal after a crash", { journal: journalPath, files: rewritten });
    }
  }

  /** Makes the journal file `capacity` bytes of written (allocated) blocks. */
  async function preallocate(journal: FileHandle, from: number): Promise<void> {
    const zeros = Buffer.alloc(Math.min(ZEROS_CHUNK_BYTES, capacity));
    for (let position = from; position < capacity; position += zeros.byteLength) {
      await writeFully(journal, zeros.subarray(0, Math.min(zeros.byteLength, capacity - position)), position);
    }
    await journal.sync();
  }

  /**
   * Opens `filePath` for an overwrite in place when its allocated blocks hold `byteLength` bytes
   * (no block to allocate, so no ENOSPC); undefined when it does not exist or is too small.
   */
  function openForOverwrite(filePath: string, byteLength: number): number | undefined {
    let fd: number;
    try {
      fd = openSync(filePath, constants.O_WRONLY);
    } catch {
      return undefined; // missing (a new model) or not writable: the temporary file's way says why
    }
    try {
      const stats = fstatSync(fd);
      if (stats.isFile() && stats.blocks * 512 >= byteLength) {
        return fd;
      }
    } catch {
      // as if it were too small
    }
    closeSync(fd);
    return undefined;
  }

  /** pwrite and ftruncate: no rename, whose replacing of a file costs a flush of it on ext4 (auto_da_alloc). */
  function overwriteInPlace(fd: number, content: Buffer): void {
    try {
      let written = 0;
      while (written < content.byteLength) {
        const count = writeSync(fd, content, written, content.byteLength - written, written);
        if (count <= 0) {
          throw new Error(`overwrite wrote no bytes at ${written}`);
        }
        written += count;
      }
      ftruncateSync(fd, content.byteLength);
    } finally {
      closeSync(fd);
    }
  }

  async function writeThroughJournal(files: readonly GroupedFile[]): Promise<(Error | undefined)[]> {
    if (resetNeeded) {
      await checkpointNow();
    }
    const contents = files.map((file) => (typeof file.content === "string" ? Buffer.from(file.content, "utf8") : Buffer.concat(file.content)));
    // Each file is either overwritten in place (after the journal's flush) or, when new or growing
    // past its blocks, written now under a temporary name and renamed after the flush: so a full
    // disk fails a file before its record is journaled, never half-way.
    type Prepared = { readonly fd: number } | { readonly tempPath: string } | { readonly error: Error };
    const prepared: Prepared[] = await Promise.all(
      files.map(async (file, index): Promise<Prepared> => {
        const content = contents[index] ?? Buffer.alloc(0);
        const fd = openForOverwrite(file.path, content.byteLength);
        if (fd !== undefined) {
          return { fd };
        }
        return writeUnflushedTempFile(file.path, [content]).then(
          (tempPath) => ({ tempPath }),
          (error: unknown) => ({ error: asError(error) }),
        );
      }),
    );
    const undo = (): Promise<unknown> =>
      Promise.all(
        prepared.map((entry) => {
          if ("fd" in entry) {
            closeSync(entry.fd);
          } else if ("tempPath" in entry) {
            return rm(entry.tempPath, { force: true }).catch(() => {});
          }
          return undefined;
        }),
      );
    const journaled = files.flatMap((file, index) =>
      "error" in (prepared[index] ?? { error: undefined })
        ? []
        : [{ relativePath: path.relative(root, file.path).split(path.sep).join("/"), content: contents[index] ?? Buffer.alloc(0) }],
    );
    // Encoded (with the epoch) once a checkpoint that makes room, and starts a new epoch, is done.
    const encodeBatch = (): Buffer => Buffer.concat(journaled.map((entry) => encodeRecord(epoch, entry)));
    let batch = encodeBatch();
    const batchBytes = batch.byteLength;
    if (RECORDS_START + batchBytes > capacity) {
      // Larger than the whole journal: written the way it was before the journal, after a checkpoint,
      // so that no older record of these files is left to be replayed over them after a crash.
      await undo();
      await checkpointNow();
      return writeFilesAtomic(files);
    }
    try {
      if (end + batchBytes > capacity) {
        await checkpointNow();
        batch = encodeBatch();
      }
      if (batchBytes > 0) {
        try {
          await withJournal(async (journal) => {
            await writeFully(journal, batch, end);
            await journal.datasync();
          });
        } catch (error) {
          resetNeeded = true;
          throw error;
        }
        end += batchBytes;
      }
    } catch (error) {
      await undo();
      throw error;
    }
    return Promise.all(
      files.map(async (file, index): Promise<Error | undefined> => {
        const entry = prepared[index] ?? { error: new Error(`no outcome for ${file.path}`) };
        if ("error" in entry) {
          return entry.error;
        }
        journaledDirectories.add(path.dirname(file.path));
        try {
          if ("fd" in entry) {
            overwriteInPlace(entry.fd, contents[index] ?? Buffer.alloc(0));
          } else {
            await rename(entry.tempPath, file.path).catch(async (error: unknown) => {
              await rm(entry.tempPath, { force: true }).catch(() => {});
              throw error;
            });
          }
        } catch (error) {
          // Journaled, but not in place: put it in place the way it was before the journal.
          try {
            await writeFileAtomic(file.path, [contents[index] ?? Buffer.alloc(0)]);
          } catch {
            unrestored.set(file.path, contents[index] ?? Buffer.alloc(0));
            return asError(error);
          }
          unrestored.delete(file.path);
          return undefined;
        }
        unrestored.delete(file.path);
        unflushedFiles.add(file.path);
        return undefined;
      }),
    );
  }

  /** Makes the journal file (if `existing` is undefined), preallocates it as needed, and resets it. */
  async function sizeAndReset(existing: Buffer | undefined): Promise<void> {
    const journal = await open(journalPath, existing === undefined ? "w+" : "r+", FILE_MODE);
    try {
      if ((existing?.byteLength ?? 0) < capacity) {
        await preallocate(journal, existing?.byteLength ?? 0);
      }
    } finally {
      await journal.close();
    }
    if (existing === undefined) {
      await syncDirectory(root);
    }
    await reset();
  }

  function keepRecords(records: KeptRecords): void {
    kept = records;
    warn(
      records.unapplied > 0
        ? "model journal kept: its changes could not be applied on a read-only archive; model infos can be neither written nor deleted until the server restarts on a writable archive"
        : "model journal kept: its records could not be voided on a read-only archive; model infos can be neither written nor deleted until they are (tried again at each such call)",
      { journal: journalPath, records: records.records, unapplied: records.unapplied, error: records.cause },
    );
  }

  /**
   * What a model write or deletion waits for while open() kept the journal's records. When every
   * file matched its record at start (what is served is what the records say), the records are
   * applied and voided now, once the archive is writable; then writes go through the journal. When
   * some file could not be restored, what is served is older than its record: a write or deletion
   * beside the journal would be undone by the next start's replay, and applying the records now
   * would change files under what is served, so both wait for a restart (whose replay is the fix).
   */
  async function applyKeptRecords(records: KeptRecords): Promise<void> {
    if (records.unapplied > 0) {
      throw new RegistryError(
        Code.UNAVAILABLE,
        `the model journal ${journalPath} could not be applied at start (${records.cause}): model infos can be neither written nor deleted ` +
          "until it is; restart the server once the archive is writable",
      );
    }
    try {
      const bytes = await readFile(journalPath);
      replayFailures.length = 0;
      await replay(bytes);
      const failure = replayFailures[0];
      if (failure !== undefined) {
        throw new Error(`${failure.path}: ${failure.message}`);
      }
      await sizeAndReset(bytes);
    } catch (error) {
      throw new RegistryError(
        Code.UNAVAILABLE,
        `the model journal ${journalPath} holds ${records.records} record(s) that could not be voided at start and still cannot be ` +
          `(${errorMessage(error)}): model infos can be neither written nor deleted until they are; call again once the archive is writable`,
      );
    }
    kept = undefined;
    warn("model journal records voided once the archive became writable: model infos are written through the journal again", {
      journal: journalPath,
      records: records.records,
    });
    startCheckpoints();
  }

  /** Builds the journal file if missing, preallocates it, and resets it; one operation in the queue. */
  async function prepare(existing: Buffer | undefined): Promise<void> {
    try {
      if (existing === undefined) {
        const space = await statfs(root);
        if (space.bavail * space.bsize < MIN_FREE_SPACE_FACTOR * capacity) {
          warn("model journal not made: the archive's volume is nearly full; model infos are written with an fsync each", {
            journal: journalPath,
            freeBytes: space.bavail * space.bsize,
          });
          return;
        }
      }
      await sizeAndReset(existing);
    } catch (error) {
      if (existing === undefined) {
        await rm(journalPath, { force: true }).catch(() => {});
      }
      const code = errorCode(error) ?? "";
      if (!UNWRITABLE.has(code) || (replayedRecords > 0 && code !== "EROFS")) {
        // Records that cannot be voided would be replayed over newer files at every later start.
        throw error;
      }
      if (replayedRecords > 0) {
        // A read-only archive whose files all match their records: it starts, and the records stay.
        keepRecords({ records: replayedRecords, unapplied: 0, cause: errorMessage(error) });
        return;
      }
      // A full or read-only archive still starts: model infos are then written as before.
      warn("model journal unavailable: model infos are written with an fsync each", { journal: journalPath, error: errorMessage(error) });
      return;
    }
    startCheckpoints();
  }

  /** Marks the journal open and checkpoints it every CHECKPOINT_INTERVAL_MS while something waits for one. */
  function startCheckpoints(): void {
    opened = true;
    timer = setInterval(() => {
      if (unflushedFiles.size > 0 || unrestored.size > 0) {
        serially(checkpointNow).catch((error: unknown) => {
          warn("model journal checkpoint failed; it is retried", { journal: journalPath, error: errorMessage(error) });
        });
      }
    }, CHECKPOINT_INTERVAL_MS);
    timer.unref();
  }

  /**
   * The preparation left for after the server listens (see open()): not started yet, or started
   * (its outcome; a failed one is tried again by the next ready()).
   */
  let deferredPreparation: (() => Promise<void>) | undefined;
  let preparation: Promise<void> | undefined;
  const ready = (): Promise<void> => {
    if (stopping) {
      return Promise.reject(stoppingError());
    }
    if (kept !== undefined) {
      // One attempt for the calls that wait meanwhile; a failed one is tried again by the next call.
      applyingKept ??= serially(() => {
        if (finished) {
          return Promise.reject(stoppingError());
        }
        return kept === undefined ? Promise.resolve() : applyKeptRecords(kept);
      }).finally(() => {
        applyingKept = undefined;
      });
      return applyingKept;
    }
    const run = deferredPreparation;
    if (run !== undefined) {
      deferredPreparation = undefined;
      const started: Promise<void> = serially(run).catch((error: unknown) => {
        if (preparation === started && !stopping) {
          deferredPreparation = run;
          preparation = undefined;
        }
        throw error;
      });
      preparation = started;
    }
    return preparation ?? Promise.resolve();
  };

  /**
   * An operation of the journal, after its preparation, in the queue; refused once close() began, and
   * also when it comes out of the queue after close's own operation (asked just before close()).
   */
  let finished = false;
  const guarded = <T>(operation: () => Promise<T>): Promise<T> =>
    ready().then(() =>
      serially(() => {
        if (finished) {
          return Promise.reject(stoppingError());
        }
        if (!opened) {
          return Promise.reject(new Error(`the model journal ${journalPath} is unavailable`));
        }
        return operation();
      }),
    );

  /** Writes the clean-stop mark: the current epoch's header, whose records are all void (see open()). */
  async function markClean(): Promise<void> {
    if (headerClean) {
      return;
    }
    await withJournal(async (journal) => {
      await writeFully(journal, encodeHeader(epoch, true), 0);
      await journal.datasync();
    });
    headerClean = true;
  }

  return {
    async open() {
      let existing: Buffer | undefined;
      try {
        existing = await readFile(journalPath);
      } catch (error) {
        if (!isMissing(error)) {
          throw error;
        }
      }
      if (existing !== undefined) {
        await replay(existing);
        const lost = replayFailures.filter((failure) => failure.code !== "EROFS");
        if (lost.length > 0) {
          // Resetting the journal would lose these changes for good, and running without resetting it
          // would replay it over newer files at the next start: the archive must be mended first.
          throw new Error(
            `the model journal ${journalPath} could not restore ${lost.length} model file(s) after a crash ` +
              `(${lost[0]?.path}: ${lost[0]?.message}); give the archive room or permission and start again`,
          );
        }
        const failure = replayFailures[0];
        if (failure !== undefined) {
          // A read-only archive: nothing can be written, the journal stays for a writable start.
          keepRecords({ records: replayedRecords, unapplied: replayFailures.length, cause: `${failure.path}: ${failure.message}` });
          return;
        }
        /*
         * A journal a clean stop left is used as it is, with no write and no fdatasync: new records
         * are appended from RECORDS_START in the header's epoch E. Safe because
         * - no record of E is in the file: E's 4 bytes occur at no offset where a record's epoch
         *   field could be (mayHoldRecordOf), so no stale record of E can line up after new ones;
         * - the header of E is durable, and so is the void state: the clean mark is written (and
         *   flushed) only by a stop whose last checkpoint flushed header E (or found it flushed) and
         *   appended nothing since, so whatever a power loss leaves of the header is of E, a header
         *   under which no record exists (an epoch is only ever used after its header is written and
         *   epochs only grow, so no older block of the file holds a record of E either);
         * - a run that appends records of E and crashes leaves E's bytes in the file: the next start
         *   replays them and takes the reset below; a torn first record still leaves E's bytes in
         *   the records after it or in its own head, so it is seen too.
         * Deletions before the first flush of the journal are safe for the same reason: the
         * durable journal voids everything.
         */
        const headerEpoch = decodeHeader(existing.subarray(0, HEADER_BYTES));
        if (
          replayedRecords === 0 &&
          headerEpoch !== undefined &&
          isCleanHeader(existing.subarray(0, HEADER_BYTES)) &&
          existing.byteLength >= capacity &&
          !mayHoldRecordOf(existing, headerEpoch)
        ) {
          epoch = headerEpoch;
          end = RECORDS_START;
          headerClean = true;
          startCheckpoints();
          return;
        }
        if (replayedRecords > 0) {
          // The replayed records must be void before anything is served (a deletion could be undone by them).
          await serially(() => prepare(existing));
          return;
        }
      }
      // A new journal (~10-16 ms of file creation, preallocation and flushes) or the reset of one
      // with no record: no file needs them to be served, so they are left for after listening
      // (startDeferred) or the first write, whichever comes first (ready()).
      const found = existing;
      deferredPreparation = () => prepare(found);
    },

    ready,

    startDeferred() {
      if (deferredPreparation !== undefined && !stopping) {
        ready().catch((error: unknown) => {
          if (!stopping) {
            warn("model journal could not be prepared; it is tried again at the next model write", { journal: journalPath, error: errorMessage(error) });
          }
        });
      }
    },

    available: () => opened && !stopping,

    writeBatch: (files) => guarded(() => writeThroughJournal(files)),

    beforeRemoving: (directory, action) =>
      guarded(async () => {
        if (journaledDirectories.has(directory) || resetNeeded || unrestored.size > 0) {
          await checkpointNow();
        }
        return action();
      }),

    checkpoint: () => guarded(checkpointNow),

    async close() {
      if (stopping) {
        return closed;
      }
      stopping = true;
      deferredPreparation = undefined; // nothing is created once the stop began
      clearInterval(timer);
      // Queued after every operation already queued (batches, a preparation in flight): they finish
      // first; anything asked after this point was refused (stoppingError).
      closed = serially(async () => {
        finished = true;
        clearInterval(timer); // a preparation that just finished may have set it
        if (!opened) {
          return;
        }
        opened = false;
        if (unflushedFiles.size > 0 || end > RECORDS_START || resetNeeded || unrestored.size > 0) {
          await checkpointNow();
        }
        await markClean();
      })
        .catch((error: unknown) => {
          // Nothing is lost: the journal is replayed at the next start. Gone with the archive: nothing to say.
          if (!isMissing(error)) {
            warn("model journal checkpoint at stop failed; the journal is replayed at the next start", { journal: journalPath, error: errorMessage(error) });
          }
        })
        .finally(async () => {
          const closing = held;
          held = undefined;
          await closing?.then((journal) => journal.close()).catch(() => {});
        });
      return closed;
    },
  };
}

/**
 * An epoch E such that E + 1 occurs nowhere a record's epoch could be in `journal`: 0 (the first
 * epoch, 1) for a new or blank file, else a random one (a journal whose header was lost may hold
 * records of any earlier epoch).
 */
function epochBeforeUnused(journal: Buffer): number {
  let candidate = 0;
  while (mayHoldRecordOf(journal, (candidate + 1) >>> 0)) {
    candidate = randomInt(0, 2 ** 32 - 1);
  }
  return candidate;
}
