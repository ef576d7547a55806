import { performance } from "node:perf_hooks";
import { type CollectGarbage, exposeGc } from "./expose-gc.js";
import type { Logger } from "./logger.js";

/**
 * Keeps the process's memory near the cache budget, where V8's own heuristics would not:
 *
 * - Version data lives in SharedArrayBuffers whose memory V8 returns only when a major GC finds
 *   them unreachable, and a server churning 16 MiB versions allocates faster than V8 decides to
 *   collect: measured, RSS reached twice the budget although the cache's own account never
 *   exceeded it. Before each allocation of version data, if the resident set is over the limit,
 *   force a major GC (at most once per interval).
 * - Every upload passes through short-lived buffers outside the V8 heap (the HTTP/2 read buffers,
 *   grpc-js's reassembled messages), about twice its size. They die young, but V8 starts a
 *   young-generation collection only when its heap's own young objects fill up, which a server
 *   moving bytes rarely does: measured, 100-200 MiB of those dead buffers stayed resident with a
 *   256 MiB budget. So after every YOUNG_COLLECTION_BYTES of received version data, collect the
 *   young generation (about a millisecond: little of it is alive).
 */
export interface MemoryGuard {
  /** Call before allocating version data. */
  beforeAllocate(): void;
  /** Call with the size of every piece of version data received. */
  dataReceived(bytes: number): void;
  /** Major collections forced so far. */
  readonly collections: number;
  /** Young-generation collections forced so far. */
  readonly youngCollections: number;
}

const MIN_INTERVAL_MS = 250;
const YOUNG_COLLECTION_BYTES = 4 * 1024 * 1024;

export function createMemoryGuard(limitBytes: number, log: Logger): MemoryGuard {
  let gc: CollectGarbage | undefined;
  try {
    gc = exposeGc();
  } catch (error) {
    log.warn({ err: error }, "cannot expose the garbage collector: memory may exceed the budget under churn");
  }
  let last = -Infinity;
  let collections = 0;
  let youngCollections = 0;
  let receivedSinceYoungCollection = 0;
  return {
    beforeAllocate() {
      if (gc === undefined) {
        return;
      }
      const now = performance.now();
      if (now - last < MIN_INTERVAL_MS || process.memoryUsage.rss() <= limitBytes) {
        return;
      }
      last = now;
      collections++;
      gc();
    },
    dataReceived(bytes) {
      receivedSinceYoungCollection += bytes;
      if (gc === undefined || receivedSinceYoungCollection < YOUNG_COLLECTION_BYTES) {
        return;
      }
      receivedSinceYoungCollection = 0;
      youngCollections++;
      gc({ type: "minor", execution: "sync" });
    },
    get collections() {
      return collections;
    },
    get youngCollections() {
      return youngCollections;
    },
  };
}
