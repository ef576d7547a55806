/**
 * A worker thread that received views of a SharedArrayBuffer keeps that memory alive until its own
 * heap is collected, and a worker's heap, allocating little, is rarely collected: measured, evicted
 * versions stayed resident (RSS 1.4 GiB for a 256 MiB budget). So a worker collects its garbage
 * once it has been handed this many shared bytes since the last time. A young-generation
 * collection suffices (a task's views die before the next one, so they are never promoted) and
 * costs about a millisecond; a full collection, 10-30 ms, was 8% of the server's CPU when
 * publishing back to back.
 */
import { exposeGc } from "../expose-gc.js";

const SHARED_BYTES_BETWEEN_COLLECTIONS = 32 * 1024 * 1024;

export interface SharedMemoryCollectorOptions {
  /** Every so many collections is a full one, in case some views outlived two; never if absent. */
  readonly majorEvery?: number;
}

/** Returns the function to call once the thread is done with the shared views it was given. */
export function createSharedMemoryCollector(options: SharedMemoryCollectorOptions = {}): (views: readonly Uint8Array[]) => void {
  let collectGarbage: ReturnType<typeof exposeGc> | undefined;
  try {
    collectGarbage = exposeGc();
  } catch {
    collectGarbage = undefined;
  }
  let sharedBytesSinceCollection = 0;
  let collections = 0;
  return (views) => {
    for (const view of views) {
      if (view.buffer instanceof SharedArrayBuffer) {
        sharedBytesSinceCollection += view.byteLength;
      }
    }
    if (sharedBytesSinceCollection < SHARED_BYTES_BETWEEN_COLLECTIONS || collectGarbage === undefined) {
      return;
    }
    sharedBytesSinceCollection = 0;
    collections++;
    const major = options.majorEvery !== undefined && collections % options.majorEvery === 0;
    // Synchronously: piscina's workers may sleep in Atomics.wait between tasks, so a deferred
    // callback could wait for the next task. This task's own views survive until the next collection.
    collectGarbage({ type: major ? "major" : "minor", execution: "sync" });
  };
}
