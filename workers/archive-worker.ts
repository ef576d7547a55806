/**
 * Piscina task file: the only code that hashes version data or writes archive
 * files. Data arrives as views of SharedArrayBuffers, so nothing is copied.
 */
import { writeFileAtomic, writeVersionFilesAtomic } from "../src/archive/atomic-write.js";
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

const hashers = new Map<Sha256Implementation, Promise<Sha256Base64>>();

export async function hash(task: HashTask): Promise<string> {
  let hasher = hashers.get(task.implementation);
  if (hasher === undefined) {
    hasher = createSha256(task.implementation);
    hashers.set(task.implementation, hasher);
  }
  return (await hasher)(task.segments);
}

export async function writeFile(task: WriteFileTask): Promise<void> {
  await writeFileAtomic(task.path, task.content);
}

export async function writeVersion(task: WriteVersionTask): Promise<void> {
  await writeVersionFilesAtomic(task);
}
