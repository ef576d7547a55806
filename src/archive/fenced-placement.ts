/*
 * Puts a version's staged files (written and flushed under temporary names) in place where several
 * instances share the archive directory (Redis mode). A version number is held there by a lease in
 * Redis, and a writer may outlive its lease unknowingly (paused, frozen, cut off from Redis while its
 * disk write went on): the rightful holder of the number may then be writing, or have committed, the
 * same file names. No file system call can be fenced by Redis, so:
 * - the files go in place only once the fence confirms the claim, with time to spare;
 * - each file is linked in without replacing (link: EEXIST), so what a stale writer's late call
 *   meets at the final name (the rightful writer's files) stays;
 * - a file already at the final name is replaced only after a second confirmation: while this
 *   writer's claim holds, the number is not committed, and whatever is there is a leftover of a
 *   writer that never committed it;
 * - after a failure, only a file that is still this writer's own (same inode) is removed;
 * - before any file goes in place, a pending mark holding the version's info text is written
 *   (layout.ts, pendingMarkPath): until the shared state committed the number and the mark is
 *   removed (ArchiveStore.markCommitted), a listing skips the version, so files left by a writer
 *   that died before its commit are never listed. It is never removed after a failure: it then
 *   hides only this writer's files (a mark names one info text; any other writer's info differs).
 * What is left: a writer paused for longer than the lease's margin exactly between a confirmation
 * and its replacing rename (docs/redis-mode.md, "Stale writers").
 */
import { link, lstat, rename, rm, unlink } from "node:fs/promises";
import path from "node:path";
import type { PlacementFence } from "./archive-store.js";
import { type FileIdentity, replaceWithFlushedFile, syncDirectory } from "./atomic-write.js";
import { errorCode } from "./errno.js";

export interface StagedVersionFiles {
  readonly dataTempPath: string;
  readonly dataPath: string;
  readonly infoTempPath: string;
  readonly infoPath: string;
  /** The version's pending mark, and the info text it holds (the staged info's). */
  readonly pendingMarkPath: string;
  readonly infoText: string;
}

/** File systems without hard links: the placement falls back on a rename after the fence's confirmation. */
const LINK_UNSUPPORTED = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS"]);

const ignore = (): void => {};

async function identityOf(filePath: string): Promise<FileIdentity | undefined> {
  try {
    const { dev, ino } = await lstat(filePath);
    return { dev, ino };
  } catch {
    return undefined;
  }
}

/** Removes `filePath` if it is still the file `own` (this writer's), never another writer's file put there since. */
export async function removeIfOwn(filePath: string, own: FileIdentity): Promise<void> {
  const found = await identityOf(filePath);
  if (found !== undefined && found.dev === own.dev && found.ino === own.ino) {
    await unlink(filePath).catch(ignore);
  }
}

/** Moves `tempPath` to `finalPath`: never over a file already there unless the fence confirms again. */
async function placeWithoutReplacing(tempPath: string, finalPath: string, fence: PlacementFence): Promise<void> {
  try {
    await link(tempPath, finalPath);
  } catch (error) {
    const code = errorCode(error) ?? "";
    if (code === "EEXIST") {
      // Still the claim's holder: the file there is a leftover of a writer that never committed this number.
      await fence.confirm();
    } else if (!LINK_UNSUPPORTED.has(code)) {
      throw error;
    }
    await rename(tempPath, finalPath);
    return;
  }
  await unlink(tempPath).catch(ignore); // a name left over is removed at a start (a temporary file)
}

/**
 * Writes the pending mark: a new file put in place with a rename, so a mark already there (another
 * writer's, who never committed) is replaced whole, never seen half written. Flushed before its
 * rename: after a crash of the machine, a mark without its text would no longer hide the version's
 * files (they are flushed too); its name is flushed by the placement's directory sync (same directory).
 */
const writePendingMark = (markPath: string, infoText: string): Promise<void> => replaceWithFlushedFile(markPath, infoText);

/**
 * Puts the staged data and info files of a version in place (info last: the commit marker) under a
 * pending mark (removed once the shared state committed the version), once the
 * fence confirms the claim of their number. On failure the temporary files are removed, and so is
 * the data file if it is still this writer's; the error is rethrown (the fence's ABORTED included).
 */
export async function placeStagedVersionFiles(files: StagedVersionFiles, fence: PlacementFence): Promise<void> {
  let ownData: FileIdentity | undefined;
  try {
    // The mark's write beside the confirmation's round trip to Redis; both are done before any link.
    const [marked, confirmed] = await Promise.allSettled([writePendingMark(files.pendingMarkPath, files.infoText), fence.confirm()]);
    if (confirmed.status === "rejected") {
      throw confirmed.reason;
    }
    if (marked.status === "rejected") {
      throw marked.reason;
    }
    ownData = await identityOf(files.dataTempPath);
    await placeWithoutReplacing(files.dataTempPath, files.dataPath, fence);
    await placeWithoutReplacing(files.infoTempPath, files.infoPath, fence);
  } catch (error) {
    await Promise.all([rm(files.dataTempPath, { force: true }).catch(ignore), rm(files.infoTempPath, { force: true }).catch(ignore)]);
    if (ownData !== undefined) {
      await removeIfOwn(files.dataPath, ownData);
    }
    throw error;
  }
  const directories = new Set([path.dirname(files.dataPath), path.dirname(files.infoPath)]);
  for (const directory of directories) {
    await syncDirectory(directory);
  }
}
