/**
 * The actors: each reader has its own connections and keeps fetching the latest
 * version, checking every fetch's SHA-256 against the version's data_hash.
 *
 * - poll: RetrieveVersionInfos([-1]) in a loop; when it names a version newer
 *   than the reader has, RetrieveVersionData of that version.
 * - update: one VersionUpdate stream; on each update (the newest one pending,
 *   like the server's own single slot) RetrieveVersionData of that version.
 *
 * Version infos and updates always go through the grpc-js client. The data goes
 * through the lean node:http2 reader by default (task.client = "http2", on a
 * second connection of the reader), which costs less client CPU per byte than
 * grpc-js's reassembly and decoding; "grpc-js" reads it with the e2e client.
 */
import {
  type FetchedData,
  type RegistryClient,
  type WireVersionInfo,
  NOT_FOUND,
  createBenchClient,
  errorText,
  fetchVersionData,
  grpcCode,
} from "../support/bench-client.js";
import { sharedNow, sleep } from "../support/clock.js";
import { Http2DataReader } from "./http2-data-reader.js";
import { DRAIN_GRACE_MS, type Fetch, type MeasuredWindow, type ReadersResult, type ReadersTask } from "./generator-protocol.js";
import { WakeSignal } from "./wake-signal.js";

const MAX_ERRORS_PER_READER = 50;

interface Counters {
  windowBytes: number;
  windowPolls: number;
  windowUpdates: number;
  errors: number;
  firstError: string | undefined;
  readonly fetches: Fetch[];
}

export async function runReaders(task: ReadersTask, window: MeasuredWindow, stop: AbortSignal): Promise<ReadersResult> {
  const counters: Counters = { windowBytes: 0, windowPolls: 0, windowUpdates: 0, errors: 0, firstError: undefined, fetches: [] };
  const readers = Array.from({ length: task.count }, (_, i) => new Reader(task, task.firstReader + i, window, stop, counters));
  stop.addEventListener("abort", () => readers.forEach((reader) => reader.close()), { once: true });
  try {
    await Promise.all(readers.map((reader) => reader.run()));
  } finally {
    for (const reader of readers) {
      reader.close();
    }
  }
  return { role: "readers", ...counters };
}

class Reader {
  private readonly client: RegistryClient;
  private readonly dataReader: Http2DataReader | undefined;
  private have = 0;
  private errors = 0;

  constructor(
    private readonly task: ReadersTask,
    private readonly id: number,
    private readonly window: MeasuredWindow,
    private readonly stop: AbortSignal,
    private readonly counters: Counters,
  ) {
    this.client = createBenchClient(task.address, { windowBytes: task.windowBytes });
    this.dataReader = task.client === "http2" ? new Http2DataReader(task.address, task.windowBytes) : undefined;
  }

  close(): void {
    this.client.close();
    this.dataReader?.close();
  }

  run(): Promise<void> {
    return this.task.mode === "poll" ? this.poll() : this.followUpdates();
  }

  private get running(): boolean {
    return !this.stop.aborted && sharedNow() < this.window.windowEnd && this.errors < MAX_ERRORS_PER_READER;
  }

  private inWindow(at: number): boolean {
    return at >= this.window.windowStart && at < this.window.windowEnd;
  }

  private async poll(): Promise<void> {
    while (this.running) {
      let latest: WireVersionInfo | undefined;
      try {
        const reply = await this.client.retrieveVersionInfos({ model_id: this.task.modelId, version_numbers: [-1] });
        latest = reply.version_infos[0];
      } catch (error) {
        this.failed(error);
        await sleep(10);
        continue;
      }
      if (this.inWindow(sharedNow())) {
        this.counters.windowPolls++;
      }
      if (latest !== undefined && latest.version_number > this.have) {
        await this.fetch(latest);
      }
    }
  }

  private async followUpdates(): Promise<void> {
    const wake = new WakeSignal();
    let latest: WireVersionInfo | undefined;
    let streamError: unknown;
    const stream = this.client.versionUpdate(this.task.modelId);
    stream.on("data", (message: { version_info: WireVersionInfo }) => {
      if (this.inWindow(sharedNow())) {
        this.counters.windowUpdates++;
      }
      if (latest === undefined || message.version_info.version_number > latest.version_number) {
        latest = message.version_info;
      }
      wake.wake();
    });
    stream.on("error", (error) => {
      streamError = error;
      wake.wake();
    });
    stream.on("end", () => wake.wake());
    try {
      while (this.running && streamError === undefined) {
        if (latest !== undefined && latest.version_number > this.have) {
          await this.fetch(latest);
        } else {
          await wake.wait(this.window.windowEnd, this.stop, sharedNow);
        }
      }
      if (streamError !== undefined && !this.stop.aborted) {
        this.failed(streamError);
      }
    } finally {
      stream.cancel();
    }
  }

  private async fetch(info: WireVersionInfo): Promise<void> {
    const versionNumber = info.version_number;
    this.have = versionNumber;
    const startedAt = sharedNow();
    const countChunk = (length: number, at: number): void => {
      if (this.inWindow(at)) {
        this.counters.windowBytes += length;
      }
    };
    try {
      const data = await this.fetchData(versionNumber, countChunk);
      const ok = data.hashBase64 === info.data_hash && String(data.bytes) === info.data_size;
      this.record(versionNumber, ok ? "ok" : "mismatch", startedAt, data.lastByteAt, data.bytes);
    } catch (error) {
      if (this.stop.aborted) {
        return;
      }
      if (grpcCode(error) === NOT_FOUND) {
        this.record(versionNumber, "not-found", startedAt, sharedNow(), 0);
      } else {
        this.record(versionNumber, "error", startedAt, sharedNow(), 0);
        this.failed(error);
      }
    }
  }

  private fetchData(versionNumber: number, onChunk: (length: number, at: number) => void): Promise<FetchedData> {
    const deadline = this.window.windowEnd + DRAIN_GRACE_MS;
    return this.dataReader === undefined
      ? fetchVersionData(this.client, this.task.modelId, versionNumber, onChunk, deadline)
      : this.dataReader.fetch(this.task.modelId, versionNumber, onChunk, deadline);
  }

  private record(versionNumber: number, outcome: Fetch["outcome"], startedAt: number, completedAt: number, bytes: number): void {
    this.counters.fetches.push({ reader: this.id, versionNumber, outcome, startedAt, completedAt, bytes });
  }

  private failed(error: unknown): void {
    this.errors++;
    this.counters.errors++;
    this.counters.firstError ??= errorText(error);
  }
}
