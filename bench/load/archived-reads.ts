/**
 * The archived-read scenario's client: times RetrieveVersionData of versions the server has only on
 * disk (it was restarted), with an 8 MiB client window (as transfer.ts: grpc-js's default 64 KiB
 * would cap the speed), through the raw-socket reader or the lean node:http2 reader. A read is right
 * when its bytes are the version's: compared byte for byte (raw reader, given the expected file) or
 * through their SHA-256.
 */
import { sharedNow } from "../support/clock.js";
import type { FetchedData } from "../support/bench-client.js";
import type { ArchivedReadResult, ArchivedReadTask } from "./generator-protocol.js";
import { ExpectedBytes } from "./expected-bytes.js";
import { Http2DataReader } from "./http2-data-reader.js";
import { RawHttp2Client } from "./raw-http2-client.js";
import { CLIENT_WINDOW_BYTES } from "./transfer.js";

const CALL_TIMEOUT_MS = 120_000;

interface DataReader {
  fetch(
    modelId: string,
    versionNumber: number,
    onChunk?: (length: number, at: number) => void,
    deadline?: number,
    expected?: ExpectedBytes,
  ): Promise<FetchedData>;
  close(): void;
}

export async function runArchivedReads(task: ArchivedReadTask, stop: AbortSignal): Promise<ArchivedReadResult> {
  const raw = task.reader === "raw" ? new RawHttp2Client(task.address, CLIENT_WINDOW_BYTES) : undefined;
  const reader: DataReader = raw ?? new Http2DataReader(task.address, CLIENT_WINDOW_BYTES);
  stop.addEventListener("abort", () => reader.close(), { once: true });
  let mismatches = 0;
  const timedRead = async (version: ArchivedReadTask["versions"][number]): Promise<number> => {
    // Only the raw reader compares bytes (the node:http2 reader hashes, as before).
    const expected = raw !== undefined && version.expectedFile !== undefined ? new ExpectedBytes(version.expectedFile) : undefined;
    try {
      const startedAt = sharedNow();
      const fetched = await reader.fetch(task.modelId, version.versionNumber, undefined, startedAt + CALL_TIMEOUT_MS, expected);
      const right = expected === undefined ? fetched.hashBase64 === version.hash : fetched.matchedExpected === true;
      if (!right || fetched.bytes !== version.bytes) {
        mismatches++;
      }
      return fetched.lastByteAt - startedAt;
    } finally {
      expected?.close();
    }
  };
  try {
    // Connect first, on another model (a call on this one would load its versions before the timed read).
    await reader.fetch(`${task.modelId}-absent`, 1).catch(() => undefined);
    const firstReadsMs: number[] = [];
    for (const version of task.versions) {
      firstReadsMs.push(await timedRead(version));
    }
    const first = task.versions[0];
    const secondReadMs = first === undefined ? 0 : await timedRead(first);
    return { role: "archived-read", firstReadsMs, secondReadMs, mismatches, dataFrames: raw?.dataFrames ?? 0, dataFrameBytes: raw?.dataFrameBytes ?? 0 };
  } finally {
    reader.close();
  }
}
