import { createHash } from "node:crypto";

/** Resumable SHA-256 run off the main thread (the worker pool's hash-wasm state, passed along). */
export interface ResumableHash {
  update(state: Uint8Array | undefined, segments: readonly Uint8Array[]): Promise<Uint8Array>;
  digest(state: Uint8Array): Promise<string>;
}

/** SHA-256 of data that arrives piece by piece while it is being sent. */
export interface StreamingHash {
  /**
   * Adds the next piece. The piece must not be changed afterwards (it may be read later, on a worker
   * thread: hand over SharedArrayBuffer views to avoid a copy). Returns a promise when the hashing has
   * fallen too far behind: wait for it before producing more (it bounds the memory held for hashing).
   */
  add(segment: Uint8Array): Promise<void> | undefined;
  /** Standard padded base64, as data_hash; call once, after the last add. */
  digest(): Promise<string>;
}

/** Bytes handed to one worker task: one round trip per batch, not per reply chunk. */
const WORKER_BATCH_BYTES = 4 * 1024 * 1024;
/** Batches queued behind the one being hashed before add() asks the producer to wait. */
const WORKER_BATCHES_AHEAD = 2;

/**
 * Hashing that follows the stream: with `resumable`, batches are hashed on the worker pool one after
 * the other while the main thread goes on reading and sending (hash-wasm, ~250 MB/s per stream,
 * measured); without it (an embedded registry without a pool), node:crypto on the calling thread.
 */
export function createStreamingHash(resumable: ResumableHash | undefined): StreamingHash {
  return resumable === undefined ? createLocalHash() : createWorkerHash(resumable);
}

function createLocalHash(): StreamingHash {
  const hash = createHash("sha256");
  return {
    add(segment) {
      hash.update(segment);
      return undefined;
    },
    digest: () => Promise.resolve(hash.digest("base64")),
  };
}

function createWorkerHash(resumable: ResumableHash): StreamingHash {
  let state: Promise<Uint8Array | undefined> = Promise.resolve(undefined);
  const inFlight: Promise<unknown>[] = [];
  let batch: Uint8Array[] = [];
  let batchBytes = 0;
  let started = false;
  const ignore = (): void => {};
  const flush = (): void => {
    const segments = batch;
    batch = [];
    batchBytes = 0;
    started = true;
    state = state.then((previous) => resumable.update(previous, segments));
    // Handled here so that a stream given up half way leaves no unhandled rejection; the caller still
    // sees the failure through add() or digest().
    state.catch(ignore);
    inFlight.push(state);
  };
  return {
    add(segment) {
      batch.push(segment);
      batchBytes += segment.byteLength;
      if (batchBytes >= WORKER_BATCH_BYTES) {
        flush();
      }
      if (inFlight.length > WORKER_BATCHES_AHEAD) {
        return (inFlight.shift() as Promise<unknown>).then(ignore);
      }
      return undefined;
    },
    async digest() {
      if (batch.length > 0 || !started) {
        flush();
      }
      inFlight.length = 0;
      return resumable.digest((await state) as Uint8Array);
    },
  };
}
