/**
 * Messages between the bench orchestrator and its load generator processes
 * (bench/load/load-generator.ts). All times are shared-clock milliseconds (clock.ts).
 *
 * parent → child: task, then start (the measured window), optionally stop
 * child → parent: ready (connected, maybe with a port), then result or failed
 */
import type { SmallCall } from "./small-requests.js";

export type ReaderMode = "poll" | "update";

export interface PublisherTask {
  readonly role: "publisher";
  readonly address: string;
  readonly modelId: string;
  readonly versionBytes: number;
  /** Bytes per CreateVersion body message. */
  readonly chunkBytes: number;
  /** 0: back to back; otherwise start one publish every intervalMs. */
  readonly intervalMs: number;
  /** Archived versions instead of transient ones. */
  readonly archived?: boolean;
  /** What publishes: the e2e grpc-js client (the default), or the lean node:http2 one (http2-publisher.ts). */
  readonly client?: PublisherClient;
}

export type PublisherClient = "grpc-js" | "http2";

/** Which client reads version data: the e2e grpc-js client, or the lean node:http2 one (http2-data-reader.ts). */
export type ReaderClient = "grpc-js" | "http2";

export interface ReadersTask {
  readonly role: "readers";
  readonly address: string;
  readonly modelId: string;
  /** Readers in this process, each with its own connection. */
  readonly count: number;
  /** Index of this process's first reader (reader ids are unique across processes). */
  readonly firstReader: number;
  readonly mode: ReaderMode;
  /** HTTP/2 receive window of each reader's connection; 0 keeps the default (64 KiB). */
  readonly windowBytes: number;
  readonly client: ReaderClient;
}

export interface MetadataTask {
  readonly role: "metadata";
  readonly address: string;
  readonly modelId: string;
  readonly count: number;
}

/** Small calls in a tight loop, each client on its own connection (small-call-clients.ts). */
/**
 * What makes the small calls: "raw", the minimal HTTP/2 client on a raw socket (raw-http2-client.ts,
 * the cheapest, nearest to a Go load generator); "node-http2", the lean node:http2 client
 * (http2-unary-client.ts), which costs about as much CPU per call as the server it measures.
 */
export type SmallCallClient = "raw" | "node-http2";

export interface SmallCallsTask {
  readonly role: "small-calls";
  readonly client: SmallCallClient;
  readonly address: string;
  readonly call: SmallCall;
  /** The model read ("infos") or published to ("create-version"); "create-model" updates `${modelId}-${client index}`. */
  readonly modelId: string;
  readonly count: number;
  /** Index of this process's first client (client indexes are unique across processes). */
  readonly firstClient: number;
  /** Data bytes of each version ("create-version"). */
  readonly bodyBytes: number;
}

/** Connects to the source and counts bytes. */
export interface TcpSinkTask {
  readonly role: "tcp-sink";
  readonly port: number;
  readonly bytes: number;
  readonly connections: number;
  readonly readBytes: number;
}

/** Listens (its port comes back in "ready") and writes `bytes` over `connections` accepted connections. */
export interface TcpSourceTask {
  readonly role: "tcp-source";
  readonly bytes: number;
  readonly connections: number;
  readonly writeBytes: number;
}

export interface ProxyTask {
  readonly role: "proxy";
  readonly targetPort: number;
  readonly delayMs: number;
}

export interface TransferTask {
  readonly role: "transfer";
  readonly address: string;
  readonly modelId: string;
  readonly versionBytes: number;
  readonly chunkBytes: number;
  /** Also download with grpc-js's default 64 KiB client window. */
  readonly downloadWithDefaultWindow: boolean;
}

/**
 * What reads in the archived-read scenario: "raw", a minimal HTTP/2 client on a raw socket
 * (raw-http2-client.ts, the cheapest); "node-http2", the lean node:http2 reader (http2-data-reader.ts).
 */
export type ArchivedReader = "raw" | "node-http2";

/** Reads archived versions one after another, each once, then the first one again (archived-reads.ts). */
export interface ArchivedReadTask {
  readonly role: "archived-read";
  readonly reader: ArchivedReader;
  readonly address: string;
  readonly modelId: string;
  /**
   * `expectedFile`: the version's bytes as the bench wrote them; the raw reader then compares every
   * received byte with them instead of hashing (ExpectedBytes). Otherwise the SHA-256 is checked.
   */
  readonly versions: readonly { readonly versionNumber: number; readonly hash: string; readonly bytes: number; readonly expectedFile?: string }[];
}

export type GeneratorTask = PublisherTask | ReadersTask | MetadataTask | SmallCallsTask | ArchivedReadTask | TcpSinkTask | TcpSourceTask | ProxyTask | TransferTask;

export interface MeasuredWindow {
  readonly windowStart: number;
  readonly windowEnd: number;
}

export interface PublishedVersion {
  readonly versionNumber: number;
  readonly startedAt: number;
  readonly repliedAt: number;
  readonly bytes: number;
}

export interface PublisherResult {
  readonly role: "publisher";
  readonly versions: readonly PublishedVersion[];
  readonly errors: number;
  readonly firstError: string | undefined;
}

export type FetchOutcome = "ok" | "mismatch" | "not-found" | "error";

export interface Fetch {
  readonly reader: number;
  readonly versionNumber: number;
  readonly outcome: FetchOutcome;
  /** When RetrieveVersionData was called. */
  readonly startedAt: number;
  /** When the last byte arrived (or the call failed). */
  readonly completedAt: number;
  readonly bytes: number;
}

export interface ReadersResult {
  readonly role: "readers";
  readonly fetches: readonly Fetch[];
  /** Data bytes that arrived inside the measured window, partial fetches included. */
  readonly windowBytes: number;
  /** RetrieveVersionInfos calls completed inside the window (poll mode). */
  readonly windowPolls: number;
  /** VersionUpdate messages received inside the window (update mode). */
  readonly windowUpdates: number;
  readonly errors: number;
  readonly firstError: string | undefined;
}

export interface MetadataResult {
  readonly role: "metadata";
  /** Latency of each call that completed inside the window. */
  readonly latenciesMs: readonly number[];
  readonly errors: number;
  readonly firstError: string | undefined;
}

export interface SmallCallsResult {
  readonly role: "small-calls";
  /** Latency of each call that completed inside the window. */
  readonly latenciesMs: readonly number[];
  readonly errors: number;
  readonly firstError: string | undefined;
}

export interface ArchivedReadResult {
  readonly role: "archived-read";
  /** Request to last byte of each version's first read, in task order. */
  readonly firstReadsMs: readonly number[];
  /** The first version read again. */
  readonly secondReadMs: number;
  /** Reads whose bytes did not hash to the version's data_hash (or had another size). */
  readonly mismatches: number;
  /** DATA frames received and their payload bytes (the raw reader only; 0 otherwise). */
  readonly dataFrames: number;
  readonly dataFrameBytes: number;
}

export interface TcpSinkResult {
  readonly role: "tcp-sink";
  readonly bytes: number;
  readonly firstByteAt: number;
  readonly lastByteAt: number;
}

export interface TcpSourceResult {
  readonly role: "tcp-source";
  readonly bytes: number;
  readonly startedAt: number;
  readonly endedAt: number;
}

export interface ProxyResult {
  readonly role: "proxy";
  readonly bytesForwarded: number;
}

export interface TransferTiming {
  readonly ms: number;
  readonly hashOk: boolean;
}

export interface TransferResult {
  readonly role: "transfer";
  readonly uploadMs: number;
  /** Download with the client's receive window raised to 8 MiB. */
  readonly download: TransferTiming;
  /** Download with grpc-js's default client window, if asked. */
  readonly downloadDefaultWindow: TransferTiming | undefined;
}

export type GeneratorResult =
  | PublisherResult
  | ReadersResult
  | MetadataResult
  | SmallCallsResult
  | ArchivedReadResult
  | TcpSinkResult
  | TcpSourceResult
  | ProxyResult
  | TransferResult;

export type ParentMessage =
  | { readonly type: "task"; readonly task: GeneratorTask }
  | { readonly type: "start"; readonly window: MeasuredWindow }
  | { readonly type: "stop" };

export type ChildMessage =
  | { readonly type: "ready"; readonly port: number | undefined }
  | { readonly type: "result"; readonly result: GeneratorResult }
  | { readonly type: "failed"; readonly message: string };

/** How long after the window's end a generator may still finish calls in flight before it gives up on them. */
export const DRAIN_GRACE_MS = 5_000;
