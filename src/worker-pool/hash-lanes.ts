import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { LaneReply, LaneRequest } from "./hash-lane-protocol.js";

/**
 * SHA-256 of streams (a version read from disk, an upload streamed to disk) on a few dedicated
 * threads with node:crypto, ~5x hash-wasm's resumable hash on the pool (docs/performance.md). A
 * node:crypto Hash cannot move between threads and piscina picks any thread for a task, so a stream
 * is bound to one lane thread and posts its batches there: a port delivers messages in order.
 */
export interface HashLanes {
  /** A new stream's hash, on the lane with the fewest streams (its thread started if need be). */
  begin(): LaneHash;
  /** Starts the first lane's thread now (the server's deferred start); otherwise the first begin() does. */
  start(): void;
  /** The live lane threads. */
  threads(): readonly Worker[];
  /** Threads running and streams being hashed on them (Status, metrics). */
  stats(): HashLanesStats;
  /** Hashes held by the lane threads, over all lanes (tests: a stream given up leaves none). */
  openOnThreads(): Promise<number>;
  /** Stops the threads; a stream still hashing fails. */
  close(): Promise<void>;
}

export interface LaneHash {
  /**
   * Hashes the segments after those of earlier calls; resolves once they are hashed, after which they
   * may be changed. Shared memory crosses to the thread as is; other bytes are copied first.
   */
  update(segments: readonly Uint8Array[]): Promise<void>;
  /** Standard padded base64; call once, after the last update. Releases the hash on its thread. */
  digest(): Promise<string>;
  /** The stream was given up: releases its hash on its thread. Does nothing after digest(). */
  abandon(): void;
}

export interface HashLanesStats {
  readonly threads: number;
  readonly streams: number;
}

export interface HashLanesOptions {
  /** Lane threads at most; default 1 per core beyond the first, at least 1, at most 2. */
  readonly threads?: number;
}

const WORKER_FILE = new URL("./hash-lane-worker.js", import.meta.url);

interface Waiter {
  resolve(value: string | undefined): void;
  reject(error: Error): void;
}

interface LaneStream {
  /** Replies awaited, in the order they will come. */
  readonly waiters: Waiter[];
  failure: Error | undefined;
  /** Given up: forgotten once the replies already asked for have come. */
  abandoned: boolean;
}

class Lane {
  readonly streams = new Map<number, LaneStream>();
  /** count() calls awaiting their reply, in order. */
  readonly #countWaiters: ((open: number) => void)[] = [];
  #awaited = 0;
  #failure: Error | undefined;
  #lastError: Error | undefined;

  constructor(
    readonly worker: Worker,
    onExit: (lane: Lane) => void,
  ) {
    worker.unref(); // referenced only while a reply is awaited: an idle lane keeps no process alive
    worker.on("message", (reply: LaneReply) => this.#onReply(reply));
    worker.on("error", (error) => {
      this.#lastError = error;
    });
    worker.on("exit", (code) => {
      const cause = this.#lastError === undefined ? "" : `: ${this.#lastError.message}`;
      this.fail(new Error(`the hash thread stopped (exit code ${code})${cause}`));
      onExit(this);
    });
  }

  /** Posts a request of the stream; resolves with its reply (a digest, or undefined for a batch hashed). */
  post(stream: number, request: LaneRequest, transfer: ArrayBuffer[] = []): Promise<string | undefined> {
    const state = this.streams.get(stream);
    if (state === undefined) {
      return Promise.reject(new Error("the hash of this stream has ended"));
    }
    const failure = state.failure ?? this.#failure;
    if (failure !== undefined) {
      return Promise.reject(failure);
    }
    this.worker.postMessage(request, transfer);
    return new Promise((resolve, reject) => {
      state.waiters.push({ resolve, reject });
      this.#awaitOne();
    });
  }

  /** Releases the stream's hash on the thread; its replies already asked for still come. */
  abandon(stream: number): void {
    const state = this.streams.get(stream);
    if (state === undefined) {
      return;
    }
    state.abandoned = true;
    if (state.failure === undefined && this.#failure === undefined) {
      this.worker.postMessage({ kind: "abandon", stream } satisfies LaneRequest);
    }
    if (state.waiters.length === 0) {
      this.streams.delete(stream);
    }
  }

  count(): Promise<number> {
    if (this.#failure !== undefined) {
      return Promise.resolve(0);
    }
    this.worker.postMessage({ kind: "count" } satisfies LaneRequest);
    return new Promise<number>((resolve) => {
      this.#countWaiters.push(resolve);
      this.#awaitOne();
    });
  }

  /** Fails every stream of the lane with `error` (the thread stopped, or the lanes closed). */
  fail(error: Error): void {
    if (this.#failure !== undefined) {
      return;
    }
    this.#failure = error;
    for (const state of this.streams.values()) {
      state.failure = error;
      for (const waiter of state.waiters.splice(0)) {
        waiter.reject(error);
      }
    }
    for (const resolve of this.#countWaiters.splice(0)) {
      resolve(0); // a stopped thread holds nothing
    }
    this.#awaited = 0;
  }

  get failed(): boolean {
    return this.#failure !== undefined;
  }

  #awaitOne(): void {
    if (this.#awaited++ === 0) {
      this.worker.ref();
    }
  }

  #replied(): void {
    if (--this.#awaited === 0) {
      this.worker.unref();
    }
  }

  #onReply(reply: LaneReply): void {
    if (reply.kind === "count") {
      const resolve = this.#countWaiters.shift();
      if (resolve !== undefined) {
        this.#replied();
        resolve(reply.open);
      }
      return;
    }
    const state = this.streams.get(reply.stream);
    const waiter = state?.waiters.shift();
    if (state === undefined || waiter === undefined) {
      return;
    }
    this.#replied();
    if (state.abandoned && state.waiters.length === 0) {
      this.streams.delete(reply.stream);
    }
    switch (reply.kind) {
      case "hashed":
        waiter.resolve(undefined);
        break;
      case "digest":
        this.streams.delete(reply.stream);
        waiter.resolve(reply.digest);
        break;
      case "failed": {
        const error = new Error(`hashing failed on the hash thread: ${reply.message}`);
        state.failure = error;
        waiter.reject(error);
        for (const other of state.waiters.splice(0)) {
          this.#replied(); // its reply will find no waiter
          other.reject(error);
        }
        // After the batches already posted, which the thread hashes into a new hash: release that one too.
        this.worker.postMessage({ kind: "abandon", stream: reply.stream } satisfies LaneRequest);
        this.streams.delete(reply.stream);
        break;
      }
    }
  }
}

/** Bytes as the thread may take them: shared memory as is, other bytes copied to a buffer handed over. */
function forThread(segments: readonly Uint8Array[], transfer: ArrayBuffer[]): Uint8Array[] {
  return segments.map((segment) => {
    if (segment.buffer instanceof SharedArrayBuffer) {
      return segment;
    }
    // Posting a view would clone its whole underlying buffer (a Buffer's may be a shared pool).
    const copy = new Uint8Array(segment);
    transfer.push(copy.buffer);
    return copy;
  });
}

export function createHashLanes(options: HashLanesOptions = {}): HashLanes {
  const laneCount = Math.max(1, options.threads ?? Math.min(2, availableParallelism() - 1));
  const lanes: (Lane | undefined)[] = Array.from({ length: laneCount }, () => undefined);
  let nextStream = 1;
  let closed = false;

  const startLane = (index: number): Lane => {
    if (closed) {
      throw new Error("the hash threads are closed");
    }
    const existing = lanes[index];
    if (existing !== undefined && !existing.failed) {
      return existing;
    }
    const lane = new Lane(new Worker(WORKER_FILE), (stopped) => {
      if (lanes[index] === stopped) {
        lanes[index] = undefined; // replaced by the next stream that needs it
      }
    });
    lanes[index] = lane;
    return lane;
  };

  const leastBusy = (): number => {
    let best = 0;
    for (let index = 1; index < laneCount; index++) {
      if ((lanes[index]?.streams.size ?? 0) < (lanes[best]?.streams.size ?? 0)) {
        best = index;
      }
    }
    return best;
  };

  return {
    stats() {
      let threads = 0;
      let streams = 0;
      for (const lane of lanes) {
        if (lane !== undefined && !lane.failed) {
          threads++;
          streams += lane.streams.size;
        }
      }
      return { threads, streams };
    },
    begin() {
      const lane = startLane(leastBusy());
      const stream = nextStream++;
      lane.streams.set(stream, { waiters: [], failure: undefined, abandoned: false });
      let ended = false;
      return {
        async update(segments) {
          if (ended) {
            throw new Error("update after the hash ended");
          }
          const transfer: ArrayBuffer[] = [];
          const request: LaneRequest = { kind: "update", stream, segments: forThread(segments, transfer) };
          await lane.post(stream, request, transfer);
        },
        async digest() {
          if (ended) {
            throw new Error("digest after the hash ended");
          }
          ended = true;
          return (await lane.post(stream, { kind: "digest", stream })) as string;
        },
        abandon() {
          if (!ended) {
            ended = true;
            lane.abandon(stream);
          }
        },
      };
    },
    start() {
      if (!closed) {
        startLane(0);
      }
    },
    threads: () => lanes.filter((lane): lane is Lane => lane !== undefined && !lane.failed).map((lane) => lane.worker),
    async openOnThreads() {
      const counts = await Promise.all(lanes.map((lane) => (lane === undefined || lane.failed ? 0 : lane.count())));
      return counts.reduce((sum, count) => sum + count, 0);
    },
    async close() {
      closed = true;
      const stopping = lanes.filter((lane): lane is Lane => lane !== undefined);
      lanes.fill(undefined);
      for (const lane of stopping) {
        lane.fail(new Error("the hash threads are closed"));
      }
      await Promise.all(stopping.map((lane) => lane.worker.terminate()));
    },
  };
}
