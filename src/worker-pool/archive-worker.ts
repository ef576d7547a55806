/**
 * Piscina task file: the only code that hashes version data or writes archive
 * files. Data arrives as views of SharedArrayBuffers, so nothing is copied.
 */
import type { StreamedVersionCommit } from "../archive/archive-file-writer.js";
import { commitStreamedVersion, writeChunksAt, writeFilesAtomic, writeVersionFilesAtomic } from "../archive/atomic-write.js";
import { type Sha256Base64, type Sha256Implementation, createSha256 } from "../data/sha256.js";
import { createSharedMemoryCollector } from "./shared-memory-collector.js";
import type { HashTask, WriteChunksTask, WriteFilesTask, WriteOutcome, WriteVersionTask } from "./tasks.js";

/** Call once a task is done with the shared views it was given (see shared-memory-collector.ts). */
const releasedShared = createSharedMemoryCollector({ majorEvery: 16 });

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
