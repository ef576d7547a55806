/**
 * Messages between the soak orchestrator (bench/soak/soak.ts) and its traffic
 * processes (bench/soak/soak-worker.ts). Times are shared-clock milliseconds (clock.ts).
 *
 * parent → child: task, then start; child → parent: ready, then result or failed.
 */

/** Relative weights of the operations a soak client picks from at each step. */
export interface SoakMix {
  readonly publishTransient: number;
  readonly publishArchived: number;
  readonly fetchLatest: number;
  readonly fetchRandom: number;
  readonly listModels: number;
  readonly listVersions: number;
  readonly scratch: number;
}

export type SoakOp = keyof SoakMix;

export interface SoakTask {
  readonly address: string;
  readonly worker: number;
  readonly clients: number;
  /** Index of this process's first client (client ids are unique across processes). */
  readonly firstClient: number;
  /** Models created before the run and never deleted. */
  readonly sharedModels: readonly string[];
  /** Prefix of the scratch models this process creates and deletes. */
  readonly scratchPrefix: string;
  readonly minBytes: number;
  readonly maxBytes: number;
  readonly chunkBytes: number;
  readonly callDeadlineMs: number;
  /** Upper bound on the operations of one client (the run's time bound comes first in practice). */
  readonly maxOpsPerClient: number;
  readonly mix: SoakMix;
}

export interface SoakWindow {
  readonly startAt: number;
  readonly endAt: number;
}

/** An acknowledged CreateVersion: what the client sent and the number the server gave it. */
export interface Ack {
  readonly modelId: string;
  readonly versionNumber: number;
  readonly archived: boolean;
  /** SHA-256 of the data sent, standard padded base64 (like data_hash). */
  readonly hash: string;
  readonly size: number;
}

/**
 * A fetch of version -1 whose data did not match the info read just before it:
 * the latest moved on meanwhile. The orchestrator checks it against every
 * client's acknowledgements: some version numbered at least `minVersion` must have this hash.
 */
export interface LatestFetch {
  readonly modelId: string;
  readonly minVersion: number;
  readonly hash: string;
  readonly size: number;
}

/** A call that ended with a status the run does not allow, or a check that failed. */
export interface Failure {
  readonly what: string;
  readonly detail: string;
}

export interface SoakResult {
  readonly worker: number;
  /** method → gRPC code name → calls. */
  readonly outcomes: Record<string, Record<string, number>>;
  /** Calls that ended with an allowed error (NOT_FOUND of a transient or deleted version...), by reason. */
  readonly expected: Record<string, number>;
  readonly failureCount: number;
  /** The first failures (at most a few dozen), with details. */
  readonly failures: readonly Failure[];
  readonly ops: Record<string, number>;
  readonly acks: readonly Ack[];
  readonly latestFetches: readonly LatestFetch[];
  /** A sample of each method's call latencies, ms. */
  readonly latencySamples: Record<string, readonly number[]>;
  readonly bytesPublished: number;
  readonly bytesFetched: number;
  /** Operations still running when the window ended plus the grace period (they were abandoned). */
  readonly abandoned: number;
}

export type SoakParentMessage =
  | { readonly type: "task"; readonly task: SoakTask }
  | { readonly type: "start"; readonly window: SoakWindow; readonly graceMs: number };

export type SoakChildMessage =
  | { readonly type: "ready" }
  | { readonly type: "result"; readonly result: SoakResult }
  | { readonly type: "failed"; readonly message: string };
