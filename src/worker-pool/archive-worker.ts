/**
 * Piscina task file: the only code that hashes version data or writes archive
 * files. Data arrives as views of SharedArrayBuffers, so nothing is copied.
 */
import type { StreamedVersionCommit } from "../archive/archive-file-writer.js";
import { commitStreamedVersion, writeChunksAt, writeFilesAtomic, writeVersionFilesAtomic } from "../archive/atomic-write.js";
import { exposeGc } from "../expose-gc.js";
import { type Sha256Base64, type Sha256Implementation, createSha256 } from "../data/sha256.js";
import type { HashTask, WriteChunksTask, WriteFilesTask, WriteOutcome, WriteVersionTask } from "./tasks.js";

/**
 * A worker that received views of a SharedArrayBuffer keeps that memory alive until its own heap is
 * collected, and a worker's heap, allocating little, is rarely collected: measured, evicted
 * versions stayed resident (RSS 1.4 GiB for a 256 MiB budget). So a worker collects its garbage
 * once it has been handed this many shared bytes since the last time. A young-generation
 * collection suffices (a task's views die before the next one, so they are never promoted) and
 * costs about a millisecond; a full collection, 10-30 ms, was 8% of the server's CPU when
 * publishing back to back. Every MAJOR_EVERY-th collection is a full one all the same, in case
 * some views outlived two collections.
 */
const SHARED_BYTES_BETWEEN_COLLECTIONS = 32 * 1024 * 1024;
const MAJOR_EVERY = 16;
let sharedBytesSinceCollection = 0;
let collections = 0;
const collectGarbage = exposeGcIfAllowed();

function exposeGcIfAllowed(): ReturnType<typeof exposeGc> | undefined {
  try {
    return exposeGc();
  } catch {
    return undefined;
  }
}

/** Call once a task is done with the shared views it was given. */
function releasedShared(views: readonly Uint8Array[]): void {
  for (const view of views) {
    if (view.buffer instanceof SharedArrayBuffer) {
      sharedBytesSinceCollection += view.byteLength;
    }
  }
  if (sharedBytesSinceCollection >= SHARED_BYTES_BETWEEN_COLLECTIONS && collectGarbage !== undefined) {
    sharedBytesSinceCollection = 0;
    // Synchronously: piscina's workers may sleep in Atomics.wait between tasks, so a deferred
    // callback could wait for the next task. This task's own views survive until the next collection.
    collections++;
    collectGarbage({ type: collections % MAJOR_EVERY === 0 ? "major" : "minor", execution: "sync" });
  }
}

const hashers = new Map<Sha256Implementation, Promise<Sha256Base64>>();

export async function hash(task: HashTask): Promise<string> {
  let hasher = hashers.get(task.implementation);
  if (hasher === undefined) {
    hasher = createSha256(task.implementation);
    hashers.set(task.implementation, hasher);
  }
  try {
    return (await hasher)(task.segments);
  } finally {
    releasedShared(task.segments);
  }
}

function failureOf(error: unknown): WriteOutcome {
  const code = (error as { code?: unknown } | null)?.code;
  return {
    ok: false,
    message: error instanceof Error ? error.message : String(error),
    ...(typeof code === "string" ? { code } : {}),
  };
}

async function outcomeOf(write: () => Promise<void>): Promise<WriteOutcome> {
  try {
    await write();
    return { ok: true };
  } catch (error) {
    return failureOf(error);
  }
}

export async function writeFiles(task: WriteFilesTask): Promise<WriteOutcome[]> {
  try {
    const errors = await writeFilesAtomic(task.files);
    return errors.map((error) => (error === undefined ? { ok: true } : failureOf(error)));
  } catch (error) {
    return task.files.map(() => failureOf(error));
  }
}

export function writeVersion(task: WriteVersionTask): Promise<WriteOutcome> {
  return outcomeOf(() => writeVersionFilesAtomic(task)).finally(() => releasedShared(task.dataChunks));
}

export function writeChunks(task: WriteChunksTask): Promise<WriteOutcome> {
  return outcomeOf(() => writeChunksAt(task.path, task.chunks, task.position)).finally(() => releasedShared(task.chunks));
}

export function commitStreamed(task: StreamedVersionCommit): Promise<WriteOutcome> {
  return outcomeOf(() => commitStreamedVersion(task));
}
