import { createHash } from "node:crypto";

/** SHA-256 of one stream on another thread, fed in order (worker-pool/hash-lanes.ts). */
export interface OffThreadHash {
  /** Hashes the segments after earlier ones; resolves once they are hashed (they may be changed then). */
  update(segments: readonly Uint8Array[]): Promise<void>;
  /** Standard padded base64; once, after the last update. */
  digest(): Promise<string>;
  /** The stream was given up: releases the hash. Does nothing after digest(). */
  abandon(): void;
}

/** Starts the off-thread hash of a stream. */
export interface OffThreadHashing {
  begin(): OffThreadHash;
}

/** SHA-256 of data that arrives piece by piece while it is being sent. */
export interface StreamingHash {
  /**
   * Adds the next piece. The piece must not be changed afterwards (it may be read later, on another
   * thread: hand over SharedArrayBuffer views to avoid a copy). Returns a promise when the hashing has
   * fallen too far behind: wait for it before producing more (it bounds the memory held for hashing).
   */
  add(segment: Uint8Array): Promise<void> | undefined;
  /** Standard padded base64, as data_hash; call once, after the last add. */
  digest(): Promise<string>;
  /** The stream was given up before digest(): frees the hash. Does nothing after digest(). */
  abandon(): void;
}

/** Bytes posted to the hash thread at once: one message and one acknowledgement per batch, not per reply chunk. */
const BATCH_BYTES = 4 * 1024 * 1024;
/** Batches queued behind the one being hashed before add() asks the producer to wait. */
const BATCHES_AHEAD = 2;

/**
 * Hashing that follows the stream: with `offThread`, batches are hashed on a hash thread (node:crypto)
 * while the calling thread goes on reading and sending; without it (an embedded registry without
 * threads), node:crypto on the calling thread.
 */
export function createStreamingHash(offThread: OffThreadHashing | undefined): StreamingHash {
  return offThread === undefined ? createLocalHash() : createBatchedHash(offThread.begin());
}

function createLocalHash(): StreamingHash {
  const hash = createHash("sha256");
  return {
    add(segment) {
      hash.update(segment);
      return undefined;
    },
    digest: () => Promise.resolve(hash.digest("base64")),
    abandon: () => {},
  };
}

function createBatchedHash(hash: OffThreadHash): StreamingHash {
  const inFlight: Promise<void>[] = [];
  let batch: Uint8Array[] = [];
  let batchBytes = 0;
  const ignore = (): void => {};
  const flush = (): void => {
    const hashed = hash.update(batch);
    // Handled here so that a stream given up half way leaves no unhandled rejection; the caller still
    // sees the failure through add() or digest().
    hashed.catch(ignore);
    inFlight.push(hashed);
    batch = [];
    batchBytes = 0;
  };
  return {
    add(segment) {
      batch.push(segment);
      batchBytes += segment.byteLength;
      if (batchBytes >= BATCH_BYTES) {
        flush();
      }
      if (inFlight.length > BATCHES_AHEAD) {
        return inFlight.shift() as Promise<void>;
      }
      return undefined;
    },
    async digest() {
      if (batch.length > 0) {
        flush();
      }
      // A failed batch fails the digest too (the thread's replies come in order).
      await Promise.all(inFlight.splice(0));
      return hash.digest();
    },
    abandon: () => hash.abandon(),
  };
}
