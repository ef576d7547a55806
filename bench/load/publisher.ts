/** The learner: publishes versions (transient unless asked), back to back or on a fixed period, until the window ends. */
import { randomFillSync } from "node:crypto";
import { createBenchClient, errorText } from "../support/bench-client.js";
import { sharedNow, sleepUntil } from "../support/clock.js";
import type { MeasuredWindow, PublishedVersion, PublisherResult, PublisherTask } from "./generator-protocol.js";
import { Http2Publisher, STAMP_BYTES } from "./http2-publisher.js";

const MAX_ERRORS = 20;
const LEAN_TIMEOUT_MS = 60_000;

/** Publishes one version whose data starts with `stamp`, resolving with its version number. */
type PublishOne = (stamp: Buffer) => Promise<number>;

export async function runPublisher(task: PublisherTask, window: MeasuredWindow, stop: AbortSignal): Promise<PublisherResult> {
  const { publish, close } = publisherFor(task);
  stop.addEventListener("abort", close, { once: true });
  const stamp = Buffer.alloc(Math.min(task.versionBytes, task.chunkBytes) >= STAMP_BYTES ? STAMP_BYTES : 0);
  const versions: PublishedVersion[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let next = sharedNow();
  let sequence = 0;
  let lastVersionNumber = 0;
  try {
    while (!stop.aborted && sharedNow() < window.windowEnd && errors < MAX_ERRORS) {
      if (task.intervalMs > 0) {
        await sleepUntil(next);
        // A publish that overran its period starts the next one at once, without a burst to catch up.
        next = Math.max(next + task.intervalMs, sharedNow());
        if (stop.aborted || sharedNow() >= window.windowEnd) {
          break;
        }
      }
      // Every version's bytes differ (so a reader handed the wrong version fails its hash check):
      // the time, this publisher's sequence number and process id.
      sequence++;
      if (stamp.byteLength === STAMP_BYTES) {
        stamp.writeDoubleLE(sharedNow(), 0);
        stamp.writeUInt32LE(sequence, 8);
        stamp.writeUInt32LE(process.pid, 12);
      }
      const startedAt = sharedNow();
      try {
        const versionNumber = await publish(stamp);
        if (versionNumber <= lastVersionNumber) {
          throw new Error(`version_number ${versionNumber} after ${lastVersionNumber}: not increasing`);
        }
        lastVersionNumber = versionNumber;
        versions.push({ versionNumber, startedAt, repliedAt: sharedNow(), bytes: task.versionBytes });
      } catch (error) {
        if (stop.aborted) {
          break;
        }
        errors++;
        firstError ??= errorText(error);
      }
    }
  } finally {
    close();
  }
  return { role: "publisher", versions, errors, firstError };
}

function publisherFor(task: PublisherTask): { publish: PublishOne; close: () => void } {
  if (task.client === "http2") {
    const lean = new Http2Publisher(task.address, task.modelId, task.versionBytes, {
      chunkBytes: task.chunkBytes,
      archived: task.archived ?? false,
      timeoutMs: LEAN_TIMEOUT_MS,
    });
    return { publish: async (stamp) => (await lean.publish(stamp)).versionNumber, close: () => lean.close() };
  }
  const client = createBenchClient(task.address);
  const data = randomFillSync(Buffer.allocUnsafe(task.versionBytes));
  return {
    publish: async (stamp) => {
      data.set(stamp, 0);
      const info = await client.publish(task.modelId, data, { chunkBytes: task.chunkBytes, archived: task.archived ?? false });
      return info.version_number;
    },
    close: () => client.close(),
  };
}
