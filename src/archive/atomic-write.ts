/*
 * The only code that writes archive files. Runs in worker threads too, so: plain async functions
 * taking structured-clone friendly arguments.
 *
 * Every file is written under a temporary name in its final directory, flushed to disk, then
 * renamed into place, and the directory is flushed so the rename itself survives a crash.
 */
import { lstat, open, rename, rm } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import path from "node:path";
import type { ArchiveFileWriter, StreamedVersionCommit, VersionFilesWrite } from "./archive-file-writer.js";
import { errorCode } from "./errno.js";
import { tempFileName } from "./layout.js";

// Same permissions as the original server's files.
const FILE_MODE = 0o640;
// Linux's IOV_MAX: writev refuses more buffers than this in one call.
const MAX_BUFFERS_PER_WRITEV = 1024;
// Filesystems (or platforms) that cannot fsync a directory report one of these.
const UNSUPPORTED_DIRECTORY_SYNC = new Set(["EINVAL", "ENOTSUP", "EISDIR", "EPERM"]);

const ignore = (): void => {};

async function writeAll(handle: FileHandle, chunks: readonly Uint8Array[], start = 0): Promise<void> {
  const pending = chunks.filter((chunk) => chunk.byteLength > 0);
  let index = 0;
  let offsetInChunk = 0;
  let position = start;
  while (index < pending.length) {
    const first = pending[index];
    if (first === undefined) {
      break;
    }
    const batch = [first.subarray(offsetInChunk), ...pending.slice(index + 1, index + MAX_BUFFERS_PER_WRITEV)];
    const { bytesWritten } = await handle.writev(batch, position);
    if (bytesWritten <= 0) {
      throw new Error(`writev wrote no bytes at position ${position}`);
    }
    position += bytesWritten;
    // Skip what was written: whole chunks, then part of the next one.
    let remaining = bytesWritten;
    while (remaining > 0) {
      const chunk = pending[index];
      if (chunk === undefined) {
        break;
      }
      const left = chunk.byteLength - offsetInChunk;
      if (remaining >= left) {
        remaining -= left;
        index += 1;
        offsetInChunk = 0;
      } else {
        offsetInChunk += remaining;
        remaining = 0;
      }
    }
  }
}

/** Creates `filePath` (which must not exist), writes everything and (unless told not to) flushes it to disk. */
async function writeNewFile(filePath: string, chunks: readonly Uint8Array[], flush = true): Promise<void> {
  const handle = await open(filePath, "wx", FILE_MODE);
  try {
    await writeAll(handle, chunks);
    if (flush) {
      await handle.datasync();
    }
  } catch (error) {
    await handle.close().catch(ignore);
    throw error;
  }
  await handle.close();
}

/** Flushes a directory's entries (a created, renamed or removed name) to disk, where the file system supports it. */
export async function syncDirectory(directory: string): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await open(directory, "r");
  } catch (error) {
    if (UNSUPPORTED_DIRECTORY_SYNC.has(errorCode(error) ?? "")) {
      return;
    }
    throw error;
  }
  try {
    await handle.sync();
  } catch (error) {
    if (!UNSUPPORTED_DIRECTORY_SYNC.has(errorCode(error) ?? "")) {
      await handle.close().catch(ignore);
      throw error;
    }
  }
  await handle.close();
}

const removeQuietly = (filePath: string): Promise<void> => rm(filePath, { force: true }).catch(ignore);

const toChunks = (content: string | readonly Uint8Array[]): readonly Uint8Array[] =>
  typeof content === "string" ? [Buffer.from(content, "utf8")] : content;

const tempPathFor = (finalPath: string): string =>
  path.join(path.dirname(finalPath), tempFileName(path.basename(finalPath)));

/**
 * Atomically replaces (or creates) `finalPath` with `content`. On failure the temporary file is
 * removed and the original error (with its `code`: ENOSPC, EACCES, ...) is rethrown; if only the
 * final directory flush fails, the new file is already in place.
 */
export async function writeFileAtomic(finalPath: string, content: string | readonly Uint8Array[]): Promise<void> {
  await replaceWithFlushedFile(finalPath, content);
  await syncDirectory(path.dirname(finalPath));
}

/**
 * writeFileAtomic without the directory flush, for a caller that flushes the directory itself after
 * more names changed in it: the content is on disk before the rename, so the name, once durable,
 * never comes back with an empty or partial file after a crash of the machine.
 */
export async function replaceWithFlushedFile(finalPath: string, content: string | readonly Uint8Array[]): Promise<void> {
  const tempPath = tempPathFor(finalPath);
  try {
    await writeNewFile(tempPath, toChunks(content));
    await rename(tempPath, finalPath);
  } catch (error) {
    await removeQuietly(tempPath);
    throw error;
  }
}

/** A file's identity: device and inode (a rename keeps it, a new file has another). */
export interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
}

/**
 * writeFileAtomic, resolving to the identity of the file it put in place: read from the temporary
 * file before its rename, so another writer's file put at `finalPath` right after cannot be taken
 * for this one.
 */
export async function writeFileAtomicIdentified(finalPath: string, content: string | readonly Uint8Array[]): Promise<FileIdentity> {
  const tempPath = tempPathFor(finalPath);
  let identity: FileIdentity;
  try {
    await writeNewFile(tempPath, toChunks(content));
    const { dev, ino } = await lstat(tempPath);
    identity = { dev, ino };
    await rename(tempPath, finalPath);
  } catch (error) {
    await removeQuietly(tempPath);
    throw error;
  }
  await syncDirectory(path.dirname(finalPath));
  return identity;
}

/**
 * Writes `content` to a new temporary file next to `finalPath`, NOT flushed (the model journal
 * makes it durable), and resolves to the temporary file's path; on failure nothing is left behind.
 */
export async function writeUnflushedTempFile(finalPath: string, content: string | readonly Uint8Array[]): Promise<string> {
  const tempPath = tempPathFor(finalPath);
  try {
    await writeNewFile(tempPath, toChunks(content), false);
  } catch (error) {
    await removeQuietly(tempPath);
    throw error;
  }
  return tempPath;
}

/**
 * writeFileAtomic for several distinct files at once (see group-commit.ts): every temporary file is
 * written and flushed concurrently, then renamed, then each directory is flushed once for all its
 * files. Resolves, in order, to each file's error (with its `code`) or undefined; a file that failed
 * leaves its previous content in place and no temporary file behind.
 */
export async function writeFilesAtomic(files: readonly { readonly path: string; readonly content: string | readonly Uint8Array[] }[]): Promise<(Error | undefined)[]> {
  const asError = (error: unknown): Error => (error instanceof Error ? error : new Error(String(error)));
  const outcomes = await Promise.all(
    files.map(async (file): Promise<Error | undefined> => {
      const tempPath = tempPathFor(file.path);
      try {
        await writeNewFile(tempPath, toChunks(file.content));
        await rename(tempPath, file.path);
        return undefined;
      } catch (error) {
        await removeQuietly(tempPath);
        return asError(error);
      }
    }),
  );
  const directories = new Map<string, Promise<Error | undefined>>();
  files.forEach((file, index) => {
    const directory = path.dirname(file.path);
    if (outcomes[index] === undefined && !directories.has(directory)) {
      directories.set(
        directory,
        syncDirectory(directory).then(
          () => undefined,
          (error: unknown) => asError(error),
        ),
      );
    }
  });
  return Promise.all(
    files.map(async (file, index) => outcomes[index] ?? (await directories.get(path.dirname(file.path)))),
  );
}

/**
 * Writes a version's data and info files. The info file is the commit marker: it is renamed into
 * place last, so after a crash there is either no info file or both files, complete. On failure
 * the temporary files are removed, and so is the data file if it was already renamed (one writer
 * per archive: it is this call's file). With `stageAt`, only the temporary files are written.
 */
export async function writeVersionFilesAtomic(request: VersionFilesWrite): Promise<void> {
  const dataTemp = request.stageAt?.dataTempPath ?? tempPathFor(request.dataPath);
  const infoTemp = request.stageAt?.infoTempPath ?? tempPathFor(request.infoPath);
  let dataRenamed = false;
  try {
    await writeNewFile(dataTemp, request.dataChunks);
    await writeNewFile(infoTemp, toChunks(request.infoText));
    if (request.stageAt !== undefined) {
      return; // staged: the caller puts the files in place
    }
    await rename(dataTemp, request.dataPath);
    dataRenamed = true;
    await rename(infoTemp, request.infoPath);
  } catch (error) {
    await Promise.all([removeQuietly(dataTemp), removeQuietly(infoTemp)]);
    if (dataRenamed) {
      await removeQuietly(request.dataPath);
    }
    throw error;
  }
  const directories = new Set([path.dirname(request.dataPath), path.dirname(request.infoPath)]);
  for (const directory of directories) {
    await syncDirectory(directory);
  }
}

/** Writes `chunks` at `position` of the temporary file of a version being streamed to disk. */
export async function writeChunksAt(filePath: string, chunks: readonly Uint8Array[], position: number): Promise<void> {
  const handle = await open(filePath, position === 0 ? "wx" : "r+", FILE_MODE);
  try {
    await writeAll(handle, chunks, position);
  } catch (error) {
    await handle.close().catch(ignore);
    throw error;
  }
  await handle.close();
}

/**
 * Puts a streamed version in place: flushes its data file, writes the info file, then renames
 * data and info (info last, the commit marker), like writeVersionFilesAtomic. With `stageInfoAt`,
 * only the flushes and the info's temporary file.
 */
export async function commitStreamedVersion(request: StreamedVersionCommit): Promise<void> {
  const infoTemp = request.stageInfoAt ?? tempPathFor(request.infoPath);
  let dataRenamed = false;
  try {
    const handle = await open(request.tempDataPath, "r+");
    try {
      await handle.datasync();
    } finally {
      await handle.close();
    }
    await writeNewFile(infoTemp, toChunks(request.infoText));
    if (request.stageInfoAt !== undefined) {
      return; // staged: the caller puts the files in place
    }
    await rename(request.tempDataPath, request.dataPath);
    dataRenamed = true;
    await rename(infoTemp, request.infoPath);
  } catch (error) {
    await Promise.all([removeQuietly(request.tempDataPath), removeQuietly(infoTemp)]);
    if (dataRenamed) {
      await removeQuietly(request.dataPath);
    }
    throw error;
  }
  await syncDirectory(path.dirname(request.infoPath));
}

/** An ArchiveFileWriter doing the writes on the calling thread (tests, tools). */
export const inlineFileWriter: ArchiveFileWriter = {
  writeFileAtomic,
  writeVersionFilesAtomic,
  writeChunksAt,
  commitStreamedVersion,
};
