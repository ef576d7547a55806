import { performance } from "node:perf_hooks";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { Logger } from "./logger.js";

/**
 * Keeps the process's memory near the cache budget. Version data lives in SharedArrayBuffers
 * whose memory V8 returns only when a major GC finds them unreachable, and a server churning
 * 16 MiB versions allocates faster than V8 decides to collect: measured, RSS reached twice the
 * budget although the cache's own account never exceeded it. Before each allocation of version
 * data, if the resident set is over the limit, force a major GC (at most once per interval).
 */
export interface MemoryGuard {
  /** Call before allocating version data. */
  beforeAllocate(): void;
  readonly collections: number;
}

const MIN_INTERVAL_MS = 250;

export function createMemoryGuard(limitBytes: number, log: Logger): MemoryGuard {
  let gc: (() => void) | undefined;
  try {
    // Node exposes gc() only with --expose-gc; the flag can be set at run time and read from a new context.
    setFlagsFromString("--expose-gc");
    gc = runInNewContext("gc") as () => void;
  } catch (error) {
    log.warn({ err: error }, "cannot expose the garbage collector: memory may exceed the budget under churn");
  }
  let last = -Infinity;
  let collections = 0;
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
    get collections() {
      return collections;
    },
  };
}
