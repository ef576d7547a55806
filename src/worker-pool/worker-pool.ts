import { availableParallelism } from "node:os";
import type { Worker } from "node:worker_threads";
import { Piscina } from "piscina";
import type { ArchiveFileWriter } from "../archive/index.js";
import { type Sha256Base64, type Sha256Implementation, createSha256 } from "../data/index.js";
import type {
  HashTask,
  WriteChunksTask,
  WriteFilesTask,
  WriteOutcome,
  WriteVersionTask,
} from "./tasks.js";
import type * as ArchiveWorker from "./archive-worker.js";
import { TwoLaneTaskQueue } from "./two-lane-task-queue.js";
import { type GroupCommitStats, createGroupCommit } from "../archive/group-commit.js";

export interface WorkerPool {
  /** SHA-256 of the segments, standard padded base64. */
  hash(segments: readonly Uint8Array[]): Promise<string>;
  /** Archive writes, run in the pool. */
  readonly fileWriter: ArchiveFileWriter;
  stats(): WorkerPoolStats;
  /** The live worker threads (a worker that dies is replaced by the pool; its task fails). */
  threads(): readonly Worker[];
  /**
   * Starts the threads now (the server calls it once it listens); otherwise the first task does.
   * Does nothing once started or closed.
   */
  start(): void;
  close(): Promise<void>;
}

export interface WorkerPoolStats {
  readonly threads: number;
  readonly queueSize: number;
  readonly completed: number;
  readonly utilization: number;
  /** Group commits of small files so far (see archive/group-commit.ts). */
  readonly smallFileWrites: GroupCommitStats;
}

export interface WorkerPoolOptions {
  readonly sha256: Sha256Implementation;
  readonly maxThreads?: number;
  /**
   * hash() of at most this many bytes runs on the calling thread (same implementation, same
   * result): below it, handing the task to a worker and back costs the main thread more than the
   * hashing itself. Default INLINE_HASH_MAX_BYTES of the implementation; 0: every hash goes to the workers.
   */
  readonly inlineHashMaxBytes?: number;
}

/**
 * The crossovers measured by bench/micro/hash-crossover.bench.ts (docs/performance.md): a hash
 * task's round trip to a worker costs the main thread ~14-18 µs, what node:crypto takes for ~30 KiB
 * and hash-wasm for ~5 KiB; so a margin under each.
 */
export const INLINE_HASH_MAX_BYTES: Readonly<Record<Sha256Implementation, number>> = {
  "node-crypto": 16 * 1024,
  "hash-wasm": 4 * 1024,
};

const WORKER_FILE = new URL("./archive-worker.js", import.meta.url);

/** A piscina task's name is the worker module's exported function it runs. */
type TaskName = {
  [K in keyof typeof ArchiveWorker]: (typeof ArchiveWorker)[K] extends (...args: never[]) => unknown ? K : never;
}[keyof typeof ArchiveWorker];

/** Small metadata writes (a model's info, the version-number mark) jump the queue of hashes and version writes. */
const URGENT_TASKS: ReadonlySet<string> = new Set<TaskName>(["writeFiles"]);

/** Rebuilds the worker's error with its errno code, so the RPC edge can map ENOSPC, EACCES… */
function errorOf(result: WriteOutcome): Error | undefined {
  return result.ok ? undefined : Object.assign(new Error(result.message), result.code === undefined ? {} : { code: result.code });
}

function throwIfFailed(outcome: unknown): void {
  const error = errorOf(outcome as WriteOutcome);
  if (error !== undefined) {
    throw error;
  }
}

function totalBytes(segments: readonly Uint8Array[]): number {
  let total = 0;
  for (const segment of segments) {
    total += segment.byteLength;
  }
  return total;
}

export function createWorkerPool(options: WorkerPoolOptions): WorkerPool {
  const maxThreads = options.maxThreads ?? Math.max(2, availableParallelism());
  // Created on first need: a thread costs the main thread a few ms and the machine a Node start, and
  // the server's start-up (spawn to first served call, issue #15) needs none.
  let started: Piscina | undefined;
  let closed = false;
  const piscina = (): Piscina => {
    if (closed) {
      throw new Error("the worker pool is closed");
    }
    started ??= new Piscina({
      filename: WORKER_FILE.href,
      minThreads: 1,
      maxThreads,
      idleTimeout: 30_000,
      // Beyond this the pool rejects tasks at once instead of queueing without bound.
      maxQueue: 4096,
      taskQueue: new TwoLaneTaskQueue(URGENT_TASKS),
    });
    return started;
  };
  const run = async (task: unknown, name: TaskName): Promise<unknown> => piscina().run(task, { name });
  const inlineHashMaxBytes = options.inlineHashMaxBytes ?? INLINE_HASH_MAX_BYTES[options.sha256];
  // Made at the first hash, not at start-up (which needs none). hash-wasm's instance is compiled
  // asynchronously: until it is ready, small hashes go to the workers too.
  let inlineSha256: Sha256Base64 | undefined;
  let inlineRequested = false;
  const inlineHasher = (): Sha256Base64 | undefined => {
    if (!inlineRequested) {
      inlineRequested = true;
      createSha256(options.sha256).then(
        (sha256) => {
          inlineSha256 = sha256;
        },
        () => {}, // the workers hash everything then
      );
    }
    return inlineSha256;
  };
  // Shared memory is shared, not copied, when posted; so no transferList is needed.
  const hash = (segments: readonly Uint8Array[]): Promise<string> => {
    const sha256 = inlineHashMaxBytes > 0 && totalBytes(segments) <= inlineHashMaxBytes ? inlineHasher() : undefined;
    if (sha256 !== undefined) {
      try {
        return Promise.resolve(sha256(segments));
      } catch (error) {
        return Promise.reject(error instanceof Error ? error : new Error(String(error)));
      }
    }
    return run({ segments, implementation: options.sha256 } satisfies HashTask, "hash") as Promise<string>;
  };
  // Small files (a model's info, metadata) go to the workers in group commits: one task, and one
  // round of fsyncs, for all the files asked for while the previous batch was being written.
  const smallFiles = createGroupCommit(async (files) => {
    const outcomes = (await run({ files } satisfies WriteFilesTask, "writeFiles")) as readonly WriteOutcome[];
    return outcomes.map(errorOf);
  });
  const fileWriter: ArchiveFileWriter = {
    writeFileAtomic: (path, content) => smallFiles.write(path, content),
    async writeVersionFilesAtomic(task) {
      throwIfFailed(await run(task satisfies WriteVersionTask, "writeVersion"));
    },
    async writeChunksAt(path, chunks, position) {
      throwIfFailed(await run({ path, chunks, position } satisfies WriteChunksTask, "writeChunks"));
    },
    async commitStreamedVersion(task) {
      throwIfFailed(await run(task, "commitStreamed"));
    },
  };
  return {
    hash,
    fileWriter,
    stats: () => ({
      threads: started?.threads.length ?? 0,
      queueSize: started?.queueSize ?? 0,
      completed: started?.completed ?? 0,
      utilization: started?.utilization ?? 0,
      smallFileWrites: smallFiles.stats(),
    }),
    threads: () => started?.threads ?? [],
    start: () => {
      if (!closed) {
        piscina();
      }
    },
    close: async () => {
      closed = true;
      await started?.close();
    },
  };
}
