import { availableParallelism } from "node:os";
import type { Worker } from "node:worker_threads";
import { Piscina } from "piscina";
import type { ArchiveFileWriter } from "../archive/index.js";
import type { Sha256Implementation } from "../data/index.js";
import type {
  HashTask,
  HashUpdateTask,
  WriteChunksTask,
  WriteFileTask,
  WriteOutcome,
  WriteVersionTask,
} from "./tasks.js";
import type * as ArchiveWorker from "./archive-worker.js";
import { TwoLaneTaskQueue } from "./two-lane-task-queue.js";

export interface WorkerPool {
  /** SHA-256 of the segments, standard padded base64. */
  hash(segments: readonly Uint8Array[]): Promise<string>;
  /** Resumable SHA-256 (hash-wasm): feed an upload batch by batch, then digest. */
  hashUpdate(state: Uint8Array | undefined, segments: readonly Uint8Array[]): Promise<Uint8Array>;
  hashDigest(state: Uint8Array): Promise<string>;
  /** Archive writes, run in the pool. */
  readonly fileWriter: ArchiveFileWriter;
  stats(): WorkerPoolStats;
  /** The live worker threads (a worker that dies is replaced by the pool; its task fails). */
  threads(): readonly Worker[];
  close(): Promise<void>;
}

export interface WorkerPoolStats {
  readonly threads: number;
  readonly queueSize: number;
  readonly completed: number;
  readonly utilization: number;
}

export interface WorkerPoolOptions {
  readonly sha256: Sha256Implementation;
  readonly maxThreads?: number;
}

const WORKER_FILE = new URL("./archive-worker.js", import.meta.url);

/** A piscina task's name is the worker module's exported function it runs. */
type TaskName = {
  [K in keyof typeof ArchiveWorker]: (typeof ArchiveWorker)[K] extends (...args: never[]) => unknown ? K : never;
}[keyof typeof ArchiveWorker];

/** Small metadata writes (a model's info, the version-number mark) jump the queue of hashes and version writes. */
const URGENT_TASKS: ReadonlySet<string> = new Set<TaskName>(["writeFile"]);

/** Rebuilds the worker's error with its errno code, so the RPC edge can map ENOSPC, EACCES… */
function throwIfFailed(outcome: unknown): void {
  const result = outcome as WriteOutcome;
  if (!result.ok) {
    throw Object.assign(new Error(result.message), result.code === undefined ? {} : { code: result.code });
  }
}

export function createWorkerPool(options: WorkerPoolOptions): WorkerPool {
  const maxThreads = options.maxThreads ?? Math.max(2, availableParallelism());
  const piscina = new Piscina({
    filename: WORKER_FILE.href,
    minThreads: 1,
    maxThreads,
    idleTimeout: 30_000,
    // Beyond this the pool rejects tasks at once instead of queueing without bound.
    maxQueue: 4096,
    taskQueue: new TwoLaneTaskQueue(URGENT_TASKS),
  });
  // Shared memory is shared, not copied, when posted; so no transferList is needed.
  const hash = (segments: readonly Uint8Array[]): Promise<string> =>
    piscina.run({ segments, implementation: options.sha256 } satisfies HashTask, { name: "hash" }) as Promise<string>;
  const fileWriter: ArchiveFileWriter = {
    async writeFileAtomic(path, content) {
      throwIfFailed(await piscina.run({ path, content } satisfies WriteFileTask, { name: "writeFile" }));
    },
    async writeVersionFilesAtomic(task) {
      throwIfFailed(await piscina.run(task satisfies WriteVersionTask, { name: "writeVersion" }));
    },
    async writeChunksAt(path, chunks, position) {
      throwIfFailed(await piscina.run({ path, chunks, position } satisfies WriteChunksTask, { name: "writeChunks" }));
    },
    async commitStreamedVersion(task) {
      throwIfFailed(await piscina.run(task, { name: "commitStreamed" }));
    },
  };
  return {
    hash,
    hashUpdate: (state, segments) =>
      piscina.run({ state, segments } satisfies HashUpdateTask, { name: "hashUpdate" }) as Promise<Uint8Array>,
    hashDigest: (state) => piscina.run(state, { name: "hashDigest" }) as Promise<string>,
    fileWriter,
    stats: () => ({
      threads: piscina.threads.length,
      queueSize: piscina.queueSize,
      completed: piscina.completed,
      utilization: piscina.utilization,
    }),
    threads: () => piscina.threads,
    close: () => piscina.close(),
  };
}
