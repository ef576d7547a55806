/**
 * Piscina task file: the only code that hashes version data or writes archive
 * files. Data arrives as views of SharedArrayBuffers, so nothing is copied.
 */
import { createSHA256 } from "hash-wasm";
import {
  type StreamedVersionCommit,
  commitStreamedVersion,
  writeChunksAt,
  writeFileAtomic,
  writeVersionFilesAtomic,
} from "../src/archive/atomic-write.js";
import { type Sha256Base64, type Sha256Implementation, createSha256 } from "../src/data/sha256.js";

export interface HashTask {
  readonly segments: readonly Uint8Array[];
  readonly implementation: Sha256Implementation;
}

export interface WriteFileTask {
  readonly path: string;
  readonly content: string | readonly Uint8Array[];
}

export interface WriteVersionTask {
  readonly dataPath: string;
  readonly dataChunks: readonly Uint8Array[];
  readonly infoPath: string;
  readonly infoText: string;
}

export interface WriteChunksTask {
  readonly path: string;
  readonly chunks: readonly Uint8Array[];
  readonly position: number;
}

/** Hashing that follows an upload batch by batch, on whichever worker is free: hash-wasm's state moves between threads. */
export interface HashUpdateTask {
  readonly state: Uint8Array | undefined;
  readonly segments: readonly Uint8Array[];
}

const hashers = new Map<Sha256Implementation, Promise<Sha256Base64>>();

export async function hash(task: HashTask): Promise<string> {
  let hasher = hashers.get(task.implementation);
  if (hasher === undefined) {
    hasher = createSha256(task.implementation);
    hashers.set(task.implementation, hasher);
  }
  return (await hasher)(task.segments);
}

/**
 * Errors crossing the thread boundary lose their own properties (an errno
 * `code` such as ENOSPC among them), so write tasks report failures as data.
 */
export type WriteOutcome = { readonly ok: true } | { readonly ok: false; readonly message: string; readonly code?: string };

async function outcomeOf(write: () => Promise<void>): Promise<WriteOutcome> {
  try {
    await write();
    return { ok: true };
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    return {
      ok: false,
      message: error instanceof Error ? error.message : String(error),
      ...(typeof code === "string" ? { code } : {}),
    };
  }
}

export function writeFile(task: WriteFileTask): Promise<WriteOutcome> {
  return outcomeOf(() => writeFileAtomic(task.path, task.content));
}

export function writeVersion(task: WriteVersionTask): Promise<WriteOutcome> {
  return outcomeOf(() => writeVersionFilesAtomic(task));
}

export function writeChunks(task: WriteChunksTask): Promise<WriteOutcome> {
  return outcomeOf(() => writeChunksAt(task.path, task.chunks, task.position));
}

export function commitStreamed(task: StreamedVersionCommit): Promise<WriteOutcome> {
  return outcomeOf(() => commitStreamedVersion(task));
}

let resumableHasher: ReturnType<typeof createSHA256> | undefined;

export async function hashUpdate(task: HashUpdateTask): Promise<Uint8Array> {
  resumableHasher ??= createSHA256();
  const hasher = await resumableHasher;
  if (task.state === undefined) {
    hasher.init();
  } else {
    hasher.load(task.state);
  }
  for (const segment of task.segments) {
    hasher.update(segment);
  }
  return hasher.save();
}

export async function hashDigest(state: Uint8Array): Promise<string> {
  resumableHasher ??= createSHA256();
  const hasher = await resumableHasher;
  hasher.load(state);
  return Buffer.from(hasher.digest("binary")).toString("base64");
}
