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
 *   force a major GC (at most once per interval). When the last one left the resident set above
 *   the limit anyway (a small budget under the runtime's own size), the next waits until the set
 *   grew FUTILE_SLACK_BYTES past that floor: measured, with an 8 MiB budget the guard otherwise
 *   ran a major GC every 250 ms through a whole burst of tiny versions, for nothing.
 *   Reading the resident set is a system call (8.8 % of the main thread's CPU per 1 KiB upload,
 *   profiled), so an allocation whose size is given may rely on the last reading instead when that
 *   reading is under SAMPLE_MAX_AGE_MS old and it, plus every byte of version data allocated since,
 *   plus this allocation, is still under the threshold (and under SAMPLE_MAX_BYTES past the
 *   reading): the resident set cannot have crossed it through version data, and anything else had
 *   at most a few ms, a fraction of the 250 ms a forced GC waits for anyway. An allocation whose size
 *   is not given always reads it.
 * - Every upload passes through short-lived buffers outside the V8 heap (the HTTP/2 read buffers,
 *   grpc-js's reassembled messages), about twice its size; an upload held in memory frees each
 *   reassembled message as soon as it copied it (src/rpc/release-received-bytes.ts), the rest
 *   waits for a collection. They die young, but V8 starts a
 *   young-generation collection only when its heap's own young objects fill up, which a server
 *   moving bytes rarely does: measured, 100-200 MiB of those dead buffers stayed resident with a
 *   256 MiB budget. So after every YOUNG_COLLECTION_BYTES of received version data, collect the
 *   young generation (about a millisecond: little of it is alive).
 * - After a burst (of tiny versions, of abusive calls), V8 keeps the heap pages it grew to: a
 *   regular major GC frees the objects but keeps the pages (fragmented by survivors, or pooled),
 *   and V8's memory reducer waits for 8 s of low allocation. Measured: 100,000 tiny versions left
 *   the resident set at ~390 MiB with ~10 MiB of live heap, 5 s later still. So every
 *   IDLE_CHECK_MS, if the event loop was mostly idle and the resident set grew IDLE_GROWTH past its
 *   level at rest, run one memory-reducing GC (V8's "last resort": compacts, gives the pages
 *   back), then take the new level as the one at rest. What the process holds on purpose (the
 *   version cache's bytes, `heldBytes`) is left out of both levels: a cache filling up is not a burst
 *   to give back, and a last-resort GC of a heap holding it costs tens of ms each time (measured:
 *   6–8 of them per bench run on an instance publishing 16 MiB versions while it waited on Redis).
 */
export interface MemoryGuard {
  /** Call before allocating version data (of `bytes`, when known: see SAMPLE_MAX_AGE_MS). */
  beforeAllocate(bytes?: number): void;
  /** Call with the size of every piece of version data received. */
  dataReceived(bytes: number): void;
  /** The idle check the timer runs (exposed for tests); true when it collected. */
  checkIdle(): boolean;
  /**
   * Exposes V8's garbage collector now (a new V8 context, about a millisecond), off the way to the
   * first served call; otherwise the first need does it. A failure is logged once, as a warning.
   */
  prepare(): void;
  /** Stops the idle check's timer (unref'd: it never keeps the process alive anyway). */
  close(): void;
  /** Major collections forced so far by beforeAllocate. */
  readonly collections: number;
  /** Times beforeAllocate read the resident set. */
  readonly residentReads: number;
  /** Young-generation collections forced so far. */
  readonly youngCollections: number;
  /** Memory-reducing collections run by the idle check so far. */
  readonly idleCollections: number;
}

export interface MemoryGuardOptions {
  /** Period of the idle check; 0 = no timer (checkIdle() may still be called). */
  readonly idleCheckMs?: number;
  /** The resident set size; default process.memoryUsage.rss. */
  readonly residentBytes?: () => number;
  /** Share of the time since the last call the event loop was busy, 0 to 1; default from performance.eventLoopUtilization. */
  readonly busyShare?: () => number;
  /** The garbage collector; default V8's, exposed at run time. */
  readonly collect?: CollectGarbage;
  /** Clock in ms; default performance.now. */
  readonly now?: () => number;
  /** Bytes held on purpose (the version cache's), which the idle check does not count as growth; default 0. */
  readonly heldBytes?: () => number;
}

const MIN_INTERVAL_MS = 250;
/** How old a resident set reading beforeAllocate may rely on, and how much allocation past it. */
const SAMPLE_MAX_AGE_MS = 10;
const SAMPLE_MAX_BYTES = 1024 * 1024;
/**
 * Far from the limit (the reading and the allocations since at least this much under it), a
 * reading stands this long instead: under 16 clients of 1 KiB CreateVersion, a reading every
 * 10 ms was ~1 % of the server's busy main thread (profiled), and memory the guard does not count
 * (heap, HTTP/2 buffers) does not grow by 64 MiB in 100 ms.
 */
const FAR_SAMPLE_MAX_AGE_MS = 100;
const FAR_MARGIN_BYTES = 64 * 1024 * 1024;
const YOUNG_COLLECTION_BYTES = 4 * 1024 * 1024;
const FUTILE_SLACK_BYTES = 32 * 1024 * 1024;
const IDLE_CHECK_MS = 2_000;
/** The event loop busy less than this share of the last check's period: idle. */
const IDLE_BUSY_SHARE = 0.1;
/** Growth past the level at rest that an idle check gives back: both an absolute and a relative floor. */
const IDLE_GROWTH_BYTES = 32 * 1024 * 1024;
const IDLE_GROWTH_RATIO = 1.2;

function eventLoopBusyShare(): () => number {
  let previous = performance.eventLoopUtilization();
  return () => {
    const current = performance.eventLoopUtilization();
    const share = performance.eventLoopUtilization(current, previous).utilization;
    previous = current;
    return share;
  };
}

export function createMemoryGuard(limitBytes: number, log: Logger, options: MemoryGuardOptions = {}): MemoryGuard {
  let collector: CollectGarbage | undefined = options.collect;
  let exposed = collector !== undefined;
  /** The collector, exposed on first need; undefined where the runtime refuses. */
  const gc = (): CollectGarbage | undefined => {
    if (!exposed) {
      exposed = true;
      try {
        collector = exposeGc();
      } catch (error) {
        log.warn({ err: error }, "cannot expose the garbage collector: memory may exceed the budget under churn");
      }
    }
    return collector;
  };
  const residentBytes = options.residentBytes ?? (() => process.memoryUsage.rss());
  const busyShare = options.busyShare ?? eventLoopBusyShare();
  const clock = options.now ?? (() => performance.now());
  let last = -Infinity;
  /** The resident set right after the last forced major GC: what such a GC cannot go below for now. */
  let floor = 0;
  let collections = 0;
  let youngCollections = 0;
  let idleCollections = 0;
  let receivedSinceYoungCollection = 0;
  let residentReads = 0;
  /** The last reading beforeAllocate took, when, and the version data allocated since. */
  let sampledResident = 0;
  let sampledAt = -Infinity;
  let allocatedSinceSample = 0;
  const readResident = (now: number): number => {
    residentReads++;
    sampledResident = residentBytes();
    sampledAt = now;
    allocatedSinceSample = 0;
    return sampledResident;
  };
  const heldBytes = options.heldBytes ?? ((): number => 0);
  /** The resident set at rest, less what is held on purpose. */
  let atRest = residentBytes() - heldBytes();

  const checkIdle = (): boolean => {
    const busy = busyShare();
    const resident = residentBytes();
    const unheld = resident - heldBytes();
    atRest = Math.min(atRest, unheld);
    const grown = unheld > atRest + IDLE_GROWTH_BYTES && unheld > atRest * IDLE_GROWTH_RATIO;
    const collect = busy >= IDLE_BUSY_SHARE || !grown ? undefined : gc();
    if (collect === undefined) {
      return false;
    }
    const startedAt = performance.now();
    collect({ type: "major", execution: "sync", flavor: "last-resort" });
    idleCollections++;
    const residentAfter = residentBytes();
    atRest = residentAfter - heldBytes();
    floor = Math.min(floor, residentAfter);
    log.debug({ residentBefore: resident, residentAfter, ms: Math.round(performance.now() - startedAt) }, "memory given back after a burst");
    return true;
  };
  const idleCheckMs = options.idleCheckMs ?? IDLE_CHECK_MS;
  const timer = idleCheckMs > 0 ? setInterval(checkIdle, idleCheckMs).unref() : undefined;

  return {
    beforeAllocate(bytes) {
      const now = clock();
      const threshold = floor > limitBytes ? floor + FUTILE_SLACK_BYTES : limitBytes;
      if (now - last < MIN_INTERVAL_MS) {
        return;
      }
      if (bytes !== undefined) {
        const allocated = allocatedSinceSample + bytes;
        const maxAge = sampledResident + allocated + FAR_MARGIN_BYTES <= threshold ? FAR_SAMPLE_MAX_AGE_MS : SAMPLE_MAX_AGE_MS;
        if (now - sampledAt < maxAge && allocated <= SAMPLE_MAX_BYTES && sampledResident + allocated <= threshold) {
          allocatedSinceSample = allocated;
          return;
        }
      }
      if (readResident(now) <= threshold) {
        allocatedSinceSample = bytes ?? 0; // allocated after the reading
        return;
      }
      const collect = gc();
      if (collect === undefined) {
        return;
      }
      last = now;
      collections++;
      collect();
      floor = residentBytes();
      sampledResident = floor;
      sampledAt = clock();
      allocatedSinceSample = bytes ?? 0;
    },
    dataReceived(bytes) {
      receivedSinceYoungCollection += bytes;
      if (receivedSinceYoungCollection < YOUNG_COLLECTION_BYTES) {
        return;
      }
      const collect = gc();
      if (collect === undefined) {
        return;
      }
      receivedSinceYoungCollection = 0;
      youngCollections++;
      collect({ type: "minor", execution: "sync" });
    },
    checkIdle,
    prepare() {
      gc();
    },
    close() {
      clearInterval(timer);
    },
    get collections() {
      return collections;
    },
    get residentReads() {
      return residentReads;
    },
    get youngCollections() {
      return youngCollections;
    },
    get idleCollections() {
      return idleCollections;
    },
  };
}
