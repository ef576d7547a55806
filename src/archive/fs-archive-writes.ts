import { closeSync, openSync, writeSync } from "node:fs";
import { constants, lstat, mkdir, open, readdir, rename, rm, rmdir } from "node:fs/promises";
import path from "node:path";
import { type ArchiveStore, META_WRITTEN, type PlacementFence, type RevocableWrite } from "./archive-store.js";
import type { ArchiveFileWriter, StreamedVersionCommit } from "./archive-file-writer.js";
import { type FileIdentity, syncDirectory, writeFileAtomicIdentified } from "./atomic-write.js";
import { errorCode, errorMessage, isMissing } from "./errno.js";
import { type FsArchiveReads, readdirIfExists } from "./fs-archive-reads.js";
import { type ConcurrencyLimit, createConcurrencyLimit } from "./concurrency-limit.js";
import { placeStagedVersionFiles, removeIfOwn, type StagedVersionFiles } from "./fenced-placement.js";
import { createGroupCommit } from "./group-commit.js";
import { createModelJournal } from "./model-journal.js";
import type { ModelRecord } from "../domain/index.js";
import { notFound, type RegistryError } from "../errors/index.js";
import {
  archiveMetaFilePath,
  isTempFileName,
  metaFilePath,
  modelDirPath,
  modelInfoPath,
  pendingMarkPath,
  tempFileName,
  versionDataPath,
  versionInfoPath,
} from "./layout.js";
import { encodeModelInfo, encodeVersionInfo } from "./yaml-codec.js";

/** The writing half of the archive directory: start-up clean-up, models, versions and metadata. */
export type FsArchiveWrites = Omit<ArchiveStore, keyof FsArchiveReads>;

// Same permissions as the original server's directories.
const DIRECTORY_MODE = 0o750;

const tempPathNextTo = (finalPath: string): string => path.join(path.dirname(finalPath), tempFileName(path.basename(finalPath)));

export function createFsArchiveWrites(
  root: string,
  writer: ArchiveFileWriter,
  warn: (message: string, details: Record<string, unknown>) => void,
  options: {
    readonly leftoverMinAgeMs?: number;
    readonly modelJournal?: boolean;
    readonly journalBytes?: number;
    /** Paces the leftover clean-up's work per entry of the root (a directory read per model); unlimited by default. */
    readonly startupScans?: ConcurrencyLimit;
  } = {},
): FsArchiveWrites {
  const leftoverMinAgeMs = options.leftoverMinAgeMs ?? 0;
  const startupScans = options.startupScans ?? createConcurrencyLimit(Number.MAX_SAFE_INTEGER);
  // Model infos go through the write-ahead journal (model-journal.ts) in group commits: one
  // fdatasync per batch. Only one process may write it: never with several instances (Redis mode).
  const journal = options.modelJournal === true ? createModelJournal({ root, warn, capacityBytes: options.journalBytes }) : undefined;
  const journaledModels = journal === undefined ? undefined : createGroupCommit((files) => journal.writeBatch(files));

  /**
   * Whether a temporary file is to be left alone: gone already, maybe written by another instance
   * sharing the directory, or changed since `changedBefore` (a write of this process in progress).
   */
  async function leaveAlone(entryPath: string, changedBefore: number | undefined): Promise<boolean> {
    if (leftoverMinAgeMs <= 0 && changedBefore === undefined) {
      return false;
    }
    try {
      const status = await lstat(entryPath);
      // ctime: a rename (a model's directory moved aside for deletion) and every write change it; utimes cannot set it back.
      return (changedBefore !== undefined && status.ctimeMs >= changedBefore) || Date.now() - status.mtimeMs < leftoverMinAgeMs;
    } catch (error) {
      if (isMissing(error)) {
        return true; // another instance's start removed it, or the write it belonged to ended
      }
      throw error;
    }
  }

  // Start-up must not fail for one entry it cannot clean or read (a read-only
  // snapshot, a permission, a symlink loop): that entry is skipped with a warning.
  async function removeLeftover(entryPath: string, changedBefore: number | undefined): Promise<void> {
    try {
      if (stopping || (await leaveAlone(entryPath, changedBefore))) {
        return;
      }
      await rm(entryPath, { recursive: true, force: true });
    } catch (error) {
      warn("could not remove a leftover temporary file of an interrupted write; it is ignored", {
        path: entryPath,
        error: errorMessage(error),
      });
      return;
    }
    warn("removed leftover temporary file of an interrupted write", { path: entryPath });
  }

  /**
   * Model directories known to exist: a write into one goes straight to the file, without a mkdir
   * first (a thread-pool round trip per call that, queued behind the fsyncs of the small-file group
   * commit, kept calls from joining the next batch). A directory removed behind the server's back
   * shows as ENOENT: it is then made again and the write retried, once.
   */
  const knownDirectories = new Set<string>();
  const pageCacheRecords = new PageCacheRecords(root);
  async function ensureKnownModelDir(directory: string): Promise<void> {
    if (!knownDirectories.has(directory)) {
      await ensureModelDir(directory);
      knownDirectories.add(directory);
    }
  }
  async function intoModelDir(directory: string, write: () => Promise<void>): Promise<void> {
    await ensureKnownModelDir(directory);
    try {
      await write();
    } catch (error) {
      if (!isMissing(error)) {
        throw error;
      }
      knownDirectories.delete(directory);
      await ensureKnownModelDir(directory);
      await write();
    }
  }

  async function cleanModelDirectory(directory: string, changedBefore: number | undefined): Promise<void> {
    if (stopping) {
      return;
    }
    let names: string[];
    try {
      names = await readdirIfExists(directory);
    } catch (error) {
      warn("could not list a model directory to remove leftover temporary files", { path: directory, error: errorMessage(error) });
      return;
    }
    await Promise.all(names.filter(isTempFileName).map((name) => removeLeftover(path.join(directory, name), changedBefore)));
  }

  /**
   * Versions being streamed into a model's directory (beginVersionData), and the deletions in
   * progress (each resolving to whether it removed the model's directory): a deletion makes its
   * model's streams fail with NOT_FOUND, as the in-memory path does, never with the ENOENT of a
   * directory renamed away, and no stream may make the directory of a deleted model again. A
   * deletion stays listed until the turn after it ended: the registry learns of it in the
   * continuation of deleteModel's promise (and refuses to begin streams from then on, see
   * StreamedVersionUpload), so a stream may begin in between.
   */
  const streams = new Map<string, Set<StreamedUpload>>();
  const deletions = new Map<string, Promise<boolean>>();
  const deletedWhileUploading = (modelId: string): RegistryError =>
    notFound(`model "${modelId}" not found (it was deleted while the version was uploading)`);
  /** Whether the model's directory was (or is being) renamed away by a deletion. */
  const removedByDeletion = async (upload: StreamedUpload): Promise<boolean> => upload.modelDeleted || ((await deletions.get(upload.modelId)) ?? false);
  /** An ENOENT in a stream while its model's deletion runs or ran: the directory was renamed away. */
  const modelGone = (upload: StreamedUpload): boolean => upload.modelDeleted || deletions.has(upload.modelId);
  function forgetStream(upload: StreamedUpload): void {
    const ofModel = streams.get(upload.modelId);
    ofModel?.delete(upload);
    if (ofModel?.size === 0) {
      streams.delete(upload.modelId);
    }
  }
  /** The error of a streamed upload's write: NOT_FOUND when its model was deleted meanwhile. */
  const streamFailure = (upload: StreamedUpload, error: unknown): unknown => (modelGone(upload) && isMissing(error) ? deletedWhileUploading(upload.modelId) : error);

  /** Resolves to whether it removed the model's directory. */
  async function deleteModel(modelId: string): Promise<boolean> {
    const directory = modelDirPath(root, modelId);
    // Before any wait: no descriptor of the model's may stay open while its directory goes.
    knownDirectories.delete(directory);
    pageCacheRecords.forgetModel(modelId);
    // Refused once stopping, and while the journal holds records a read-only start kept: a record
    // left in the journal could bring the model back.
    await journal?.ready();
    // Renaming first makes the deletion atomic; open() removes the rest if we crash midway.
    const doomed = path.join(root, tempFileName(modelId));
    // No record left in the journal may bring the model back at the next start.
    const removeDirectory = async (): Promise<boolean> => {
      try {
        await rename(directory, doomed);
      } catch (error) {
        if (isMissing(error)) {
          return false;
        }
        throw error;
      }
      return true;
    };
    const removed = journal?.available() === true ? await journal.beforeRemoving(directory, removeDirectory) : await removeDirectory();
    if (!removed) {
      return false;
    }
    for (const upload of streams.get(modelId) ?? []) {
      upload.modelDeleted = true; // its next append fails at once: no more bytes written for nothing
    }
    try {
      await syncDirectory(root); // the deletion must not be undone by a power loss
      await rm(doomed, { recursive: true, force: true });
    } catch (error) {
      warn("could not remove a deleted model's files; they will be removed on next start", {
        path: doomed,
        error: errorMessage(error),
      });
    }
    return true;
  }

  // Set by close(): a clean-up still queued removes nothing more; close() waits for the ones running.
  let stopping = false;
  const cleanups = new Set<Promise<void>>();
  /**
   * How far the archive's file system clock is ahead of this process's (negative: behind), from the
   * ctime of a probe file written now. A network file system stamps files with its server's clock:
   * a cut-off in this process's time would take the fresh temporary files of a server whose clock
   * runs behind for leftovers. Undefined when no probe could be written (nothing could be removed either).
   * Taken against the time after the probe's stat, not before its open: a thread pool busy with other
   * requests (an upload's fsyncs) delays the open, and that delay read as skew would move the cut-off
   * past files written after it; an estimate too low only keeps a few leftovers until the next start.
   */
  async function fileSystemClockSkew(): Promise<number | undefined> {
    // Named like the archive's own files (`.cogment-ts-…`), and a temporary file (a crash leaves it to the clean-up).
    const probe = path.join(root, tempFileName("cogment-ts-clock-probe"));
    try {
      const handle = await open(probe, "wx", 0o600);
      try {
        const status = await handle.stat();
        return status.ctimeMs - Date.now();
      } finally {
        await handle.close();
        await rm(probe, { force: true });
      }
    } catch (error) {
      warn("could not measure the archive file system's clock; leftover temporary files are kept", { path: probe, error: errorMessage(error) });
      return undefined;
    }
  }

  async function removeLeftovers(localChangedBefore: number | undefined): Promise<void> {
    let changedBefore = localChangedBefore;
    if (localChangedBefore !== undefined) {
      const skew = await fileSystemClockSkew();
      if (skew === undefined) {
        return;
      }
      changedBefore = localChangedBefore + skew;
    }
    const entries = await readdir(root, { withFileTypes: true });
    await Promise.all(
      entries.map(async (entry) => {
        const entryPath = path.join(root, entry.name);
        if (isTempFileName(entry.name)) {
          // Also what remains of a model whose deletion was interrupted.
          await startupScans.run(() => removeLeftover(entryPath, changedBefore));
        } else if (entry.isDirectory() && !entry.name.startsWith(".")) {
          await startupScans.run(() => cleanModelDirectory(entryPath, changedBefore));
        }
      }),
    );
  }

  /** Where several instances share the archive: the model's directory gone meanwhile means another instance deleted the model. */
  const placeFenced = (modelId: string, files: StagedVersionFiles, fence: PlacementFence): Promise<void> =>
    placeStagedVersionFiles(files, fence).catch((error: unknown) => {
      throw isMissing(error) ? deletedWhileUploading(modelId) : error;
    });

  /** commitStreamedVersion where several instances share the archive: staged by the writer, put in place here. */
  async function commitStreamedFenced(modelId: string, versionNumber: number, commit: StreamedVersionCommit, fence: PlacementFence): Promise<void> {
    const stageInfoAt = tempPathNextTo(commit.infoPath);
    await writer.commitStreamedVersion({ ...commit, stageInfoAt });
    const { tempDataPath, dataPath, infoPath, infoText } = commit;
    const markPath = pendingMarkPath(root, modelId, versionNumber);
    await placeFenced(modelId, { dataTempPath: tempDataPath, dataPath, infoTempPath: stageInfoAt, infoPath, pendingMarkPath: markPath, infoText }, fence);
  }

  return {
    async open() {
      await mkdir(root, { recursive: true, mode: DIRECTORY_MODE });
      // Before anything reads a model file: the journal's replay may rewrite some.
      await journal?.open();
    },

    async removeLeftovers(cleanupOptions) {
      if (stopping) {
        return;
      }
      const cleanup = removeLeftovers(cleanupOptions?.changedBefore);
      cleanups.add(cleanup);
      try {
        await cleanup;
      } finally {
        cleanups.delete(cleanup);
      }
    },

    startDeferred() {
      journal?.startDeferred();
    },

    async close() {
      stopping = true;
      pageCacheRecords.closeAll();
      // The journal's close begins at once: a write asked after close() is refused, not queued.
      const journalClosed = journal?.close();
      await Promise.allSettled(cleanups);
      await journalClosed;
    },

    async writeModel(model) {
      const text = encodeModelInfo(model);
      const infoPath = modelInfoPath(root, model.modelId);
      // Made after listening (model-journal.ts): the first write waits for it; refused once stopping,
      // and while the journal holds records a read-only start kept (a write beside them would be
      // undone by the next start's replay): with no journal, none is left to replay.
      await journal?.ready();
      await intoModelDir(modelDirPath(root, model.modelId), () =>
        journaledModels === undefined || journal?.available() !== true ? writer.writeFileAtomic(infoPath, text) : journaledModels.write(infoPath, text),
      );
    },

    // Only without the journal (several instances): a file written beside it could be undone by its replay.
    ...(journal === undefined
      ? {
          async writeModelRevocably(model: ModelRecord): Promise<RevocableWrite> {
            const directory = modelDirPath(root, model.modelId);
            const infoPath = modelInfoPath(root, model.modelId);
            let written: FileIdentity | undefined;
            await intoModelDir(directory, async () => {
              written = await writeFileAtomicIdentified(infoPath, encodeModelInfo(model));
            });
            return {
              async revoke() {
                if (written !== undefined) {
                  await removeIfOwn(infoPath, written);
                }
                knownDirectories.delete(directory);
                await rmdir(directory).catch(() => undefined); // kept while it holds anything (ENOTEMPTY)
              },
            };
          },
        }
      : {}),

    async deleteModel(modelId) {
      const deletion = deleteModel(modelId);
      const removed = deletion.then(
        (outcome) => outcome,
        () => false,
      );
      deletions.set(modelId, removed);
      void removed.then(() =>
        setImmediate(() => {
          if (deletions.get(modelId) === removed) {
            deletions.delete(modelId);
          }
        }),
      );
      await deletion;
    },

    async putVersion(version, dataChunks, fence) {
      if (!version.archived) {
        throw new Error(`version ${version.versionNumber} of model "${version.modelId}" is not archived`);
      }
      const total = dataChunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
      if (total !== version.dataSize) {
        const which = `version ${version.versionNumber} of model "${version.modelId}"`;
        throw new Error(`${which}: data is ${total} bytes, data_size is ${version.dataSize}`);
      }
      const files = {
        dataPath: versionDataPath(root, version.modelId, version.versionNumber),
        dataChunks,
        infoPath: versionInfoPath(root, version.modelId, version.versionNumber),
        infoText: encodeVersionInfo(version),
      };
      if (fence === undefined) {
        await intoModelDir(modelDirPath(root, version.modelId), () => writer.writeVersionFilesAtomic(files));
        return;
      }
      const stageAt = { dataTempPath: tempPathNextTo(files.dataPath), infoTempPath: tempPathNextTo(files.infoPath) };
      await intoModelDir(modelDirPath(root, version.modelId), () => writer.writeVersionFilesAtomic({ ...files, stageAt }));
      const markPath = pendingMarkPath(root, version.modelId, version.versionNumber);
      await placeFenced(version.modelId, { ...stageAt, dataPath: files.dataPath, infoPath: files.infoPath, pendingMarkPath: markPath, infoText: files.infoText }, fence);
    },

    async markCommitted(modelId, versionNumber) {
      // The removal is flushed before the reply: a crash of the machine must not bring the mark back
      // and hide a version its client was told is committed.
      await rm(pendingMarkPath(root, modelId, versionNumber), { force: true });
      await syncDirectory(modelDirPath(root, modelId));
    },

    async beginVersionData(modelId) {
      const directory = modelDirPath(root, modelId);
      const upload: StreamedUpload = { modelId, modelDeleted: false };
      const refuse = (): never => {
        forgetStream(upload);
        throw deletedWhileUploading(modelId);
      };
      let ofModel = streams.get(modelId);
      if (ofModel === undefined) {
        ofModel = new Set();
        streams.set(modelId, ofModel);
      }
      ofModel.add(upload);
      if (await removedByDeletion(upload)) {
        refuse();
      }
      let made: boolean;
      try {
        made = await ensureModelDir(directory);
      } catch (error) {
        forgetStream(upload);
        throw error;
      }
      if (await removedByDeletion(upload)) {
        // Deleted while the directory was made: made again after the deletion's rename, it goes.
        if (made) {
          await rmdir(directory).catch(() => {});
        }
        refuse();
      }
      const tempDataPath = path.join(directory, tempFileName(`${modelId}-upload.data`));
      let written = 0;
      let pending: Promise<void> = Promise.resolve();
      let aborted = false;
      const write = async (chunks: readonly Uint8Array[], position: number): Promise<void> => {
        if (aborted) {
          return; // a write queued before abort() must not recreate the file abort() removes
        }
        if (upload.modelDeleted) {
          throw deletedWhileUploading(modelId);
        }
        await writer.writeChunksAt(tempDataPath, chunks, position).catch((error: unknown) => {
          throw streamFailure(upload, error);
        });
      };
      return {
        append(chunks) {
          if (aborted) {
            return Promise.reject(new Error("streamed version data was aborted"));
          }
          if (upload.modelDeleted) {
            return Promise.reject(deletedWhileUploading(modelId));
          }
          const position = written;
          written += chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
          pending = pending.then(() => write(chunks, position));
          return pending;
        },
        async commit(version, fence) {
          try {
            await pending;
            if (written !== version.dataSize) {
              throw new Error(`streamed ${written} bytes for a version whose data_size is ${version.dataSize}`);
            }
            if (written === 0) {
              await write([], 0);
            }
            const commit: StreamedVersionCommit = {
              tempDataPath,
              dataPath: versionDataPath(root, version.modelId, version.versionNumber),
              infoPath: versionInfoPath(root, version.modelId, version.versionNumber),
              infoText: encodeVersionInfo(version),
            };
            await (fence === undefined ? writer.commitStreamedVersion(commit) : commitStreamedFenced(modelId, version.versionNumber, commit, fence)).catch((error: unknown) => {
              throw streamFailure(upload, error);
            });
          } finally {
            forgetStream(upload);
          }
        },
        async abort() {
          aborted = true;
          forgetStream(upload);
          await pending.catch(() => {});
          await rm(tempDataPath, { force: true });
        },
      };
    },

    async deleteVersion(modelId, versionNumber) {
      // Info first: it is the commit marker, so a crash in between leaves no half version visible.
      await rm(versionInfoPath(root, modelId, versionNumber), { force: true });
      await rm(versionDataPath(root, modelId, versionNumber), { force: true });
    },

    async writeMeta(modelId, key, value) {
      const metaPath = metaFilePath(root, modelId, key);
      await intoModelDir(modelDirPath(root, modelId), () => writer.writeFileAtomic(metaPath, value));
    },

    // On this thread's file system calls, not the worker pool's: a single-mode start writes one
    // (see single-mode-run.ts), and the workers start only once the server listens. In place: a
    // reader of the directory (the original server, a listing) never meets a temporary name.
    async writeArchiveMeta(key, value) {
      await overwriteFileInPlace(archiveMetaFilePath(root, key), Buffer.from(value, "utf8"));
    },

    overwriteMeta(modelId, key, value, { durable }) {
      if (durable) {
        return overwriteDurably(root, modelId, key, value);
      }
      try {
        pageCacheRecords.write(modelId, key, value);
      } catch (error) {
        return Promise.reject(error);
      }
      return META_WRITTEN; // written at once: no promise per commit
    },
  };
}

// Same permissions as the original server's files.
const FILE_MODE = 0o640;
/** Record files held open at most at once (see PageCacheRecords): one per model written to in the last two turns. */
const MAX_HELD_RECORD_FILES = 64;
/** Overwritten records all have this size, so a shorter value never leaves the end of a longer one behind. */
const META_RECORD_BYTES = 128;

const SPACE = 0x20;
const NEWLINE = 0x0a;

function paddedRecord(value: string, record: Buffer = Buffer.allocUnsafe(META_RECORD_BYTES)): Buffer {
  const written = record.write(value, 0, "utf8");
  if (written !== Buffer.byteLength(value) || written >= META_RECORD_BYTES) {
    throw new Error(`metadata record of ${Buffer.byteLength(value)} bytes: at most ${META_RECORD_BYTES - 1} fit`);
  }
  record.fill(SPACE, written, META_RECORD_BYTES - 1);
  record[META_RECORD_BYTES - 1] = NEWLINE;
  return record;
}

/** Neither O_TRUNC nor a rename: a crash at any point leaves the previous record or the new one. */
async function overwriteDurably(root: string, modelId: string, key: string, value: string): Promise<void> {
  await overwriteFileInPlace(metaFilePath(root, modelId, key), paddedRecord(value));
}

/**
 * Writes `bytes` over the file's first bytes and cuts what was longer, then flushes: no temporary
 * file (so no second name in the directory while it is written), one file that is the previous
 * content or the new one once flushed; a crash during the write may leave a mix of both.
 */
async function overwriteFileInPlace(filePath: string, bytes: Uint8Array): Promise<void> {
  const handle = await open(filePath, constants.O_WRONLY | constants.O_CREAT, FILE_MODE);
  try {
    await handle.write(bytes, 0, bytes.byteLength, 0);
    await handle.truncate(bytes.byteLength); // whatever was longer before
    await handle.datasync();
  } finally {
    await handle.close();
  }
  await syncDirectory(path.dirname(filePath)); // the file may have just been created
}

/**
 * Records that only have to reach the page cache (the version-number record, written at every
 * commit), overwritten in place on the calling thread with pwrite: system calls that touch no disk
 * (~10 µs), against three round trips to the thread pool and their promises (19 % of the main
 * thread per 1 KiB CreateVersion, profiled, during which the model's next commit waited). Neither
 * O_TRUNC nor a rename, as for a durable one.
 *
 * A record's file is held open while writes to it follow each other and closed at the second
 * event-loop turn without one (as the model journal is): opening and closing it at every commit
 * were ~11 % of the server's busy main thread under 16 clients of 1 KiB CreateVersion (profiled),
 * while an idle server holds no descriptor, so `mount -o remount,ro` works and a model costs a
 * descriptor only while it is being written to (at most MAX_HELD_RECORD_FILES at once). A record
 * file removed behind the server's back while held is made again at the first write after the
 * file was closed (before, at the next write). A failed write closes the file (the next write
 * opens it again); deleteModel closes the model's files before its directory goes, and close()
 * every file.
 */
class PageCacheRecords {
  /** Model id → key → the record's file (two lookups: no key string made per write). */
  readonly #files = new Map<string, Map<string, RecordFile>>();
  /** Files whose descriptor is held, checked at each turn's check phase (see #sweep). */
  readonly #open = new Set<RecordFile>();
  #sweepScheduled = false;
  /** Every record is written synchronously from here: one buffer serves them all (no ArrayBuffer per commit). */
  readonly #scratch = Buffer.allocUnsafe(META_RECORD_BYTES);

  constructor(private readonly root: string) {}

  write(modelId: string, key: string, value: string): void {
    const record = paddedRecord(value, this.#scratch);
    let files = this.#files.get(modelId);
    if (files === undefined) {
      files = new Map();
      this.#files.set(modelId, files);
    }
    let file = files.get(key);
    if (file === undefined) {
      file = { path: metaFilePath(this.root, modelId, key), fd: undefined, writtenSinceSweep: false };
      files.set(key, file);
    }
    if (file.fd === undefined) {
      file.fd = openSync(file.path, constants.O_WRONLY | constants.O_CREAT, FILE_MODE);
      this.#open.add(file);
      this.#scheduleSweep();
    }
    file.writtenSinceSweep = true;
    try {
      writeAllSync(file.fd, record);
    } catch (error) {
      this.#close(file);
      throw error;
    }
    if (this.#open.size > MAX_HELD_RECORD_FILES) {
      this.#close(file); // a burst over many models: written as before, open and close
    }
  }

  forgetModel(modelId: string): void {
    for (const file of this.#files.get(modelId)?.values() ?? []) {
      this.#close(file);
    }
    this.#files.delete(modelId);
  }

  /** Closes every held file (the archive is closing). */
  closeAll(): void {
    for (const file of this.#open) {
      this.#close(file);
    }
  }

  #scheduleSweep(): void {
    if (!this.#sweepScheduled) {
      this.#sweepScheduled = true;
      setImmediate(this.#sweep);
    }
  }

  /** Closes the files not written since the previous sweep; runs once per turn while any is held. */
  readonly #sweep = (): void => {
    this.#sweepScheduled = false;
    for (const file of this.#open) {
      if (file.writtenSinceSweep) {
        file.writtenSinceSweep = false;
      } else {
        this.#close(file);
      }
    }
    if (this.#open.size > 0) {
      this.#scheduleSweep();
    }
  };

  #close(file: RecordFile): void {
    const { fd } = file;
    if (fd === undefined) {
      return;
    }
    file.fd = undefined;
    this.#open.delete(file);
    try {
      closeSync(fd);
    } catch {
      // The record was written (or its write already failed and was reported): nothing to report.
    }
  }
}

interface RecordFile {
  readonly path: string;
  fd: number | undefined;
  writtenSinceSweep: boolean;
}

function writeAllSync(fd: number, record: Buffer): void {
  let written = 0;
  while (written < record.byteLength) {
    const count = writeSync(fd, record, written, record.byteLength - written, written);
    if (count <= 0) {
      throw new Error(`write of a ${record.byteLength}-byte record wrote nothing at ${written}`);
    }
    written += count;
  }
}

/** A version being streamed into its model's directory; `modelDeleted` once the deletion of the model renamed that directory away. */
interface StreamedUpload {
  readonly modelId: string;
  modelDeleted: boolean;
}

/**
 * Creates a model directory inside the (existing) root; true when it made it. Not `recursive`: on
 * a read-only file system a recursive mkdir reports ENOENT instead of EROFS.
 */
async function ensureModelDir(dir: string): Promise<boolean> {
  try {
    await mkdir(dir, { mode: DIRECTORY_MODE });
  } catch (error) {
    if (errorCode(error) !== "EEXIST") {
      throw error;
    }
    return false;
  }
  // A new model directory must survive a power loss with the files acknowledged in it.
  await syncDirectory(path.dirname(dir));
  return true;
}
