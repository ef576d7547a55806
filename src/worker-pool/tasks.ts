/**
 * The messages between the main thread and the archive workers: both sides import these types, and
 * neither imports the other.
 */
import type { Sha256Implementation } from "../data/sha256.js";

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
  /** Only the temporary files, left for the main thread to put in place (see VersionFilesWrite). */
  readonly stageAt?: { readonly dataTempPath: string; readonly infoTempPath: string };
}

/** Several distinct small files written as one group commit (see archive/group-commit.ts). */
export interface WriteFilesTask {
  readonly files: readonly WriteFileTask[];
}

export interface WriteChunksTask {
  readonly path: string;
  readonly chunks: readonly Uint8Array[];
  readonly position: number;
}

/**
 * Errors crossing the thread boundary lose their own properties (an errno
 * `code` such as ENOSPC among them), so write tasks report failures as data.
 */
export type WriteOutcome = { readonly ok: true } | { readonly ok: false; readonly message: string; readonly code?: string };

