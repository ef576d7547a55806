/** The learner: publishes versions (transient unless asked), back to back or on a fixed period, until the window ends. */
import { randomFillSync } from "node:crypto";
import { createBenchClient, errorText } from "../support/bench-client.js";
import { sharedNow, sleepUntil } from "../support/clock.js";
import type { MeasuredWindow, PublishedVersion, PublisherResult, PublisherTask } from "./generator-protocol.js";

const MAX_ERRORS = 20;

export async function runPublisher(task: PublisherTask, window: MeasuredWindow, stop: AbortSignal): Promise<PublisherResult> {
  const client = createBenchClient(task.address);
  stop.addEventListener("abort", () => client.close(), { once: true });
  const data = randomFillSync(Buffer.allocUnsafe(task.versionBytes));
  const versions: PublishedVersion[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let next = sharedNow();
  let sequence = 0;
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
      // Every version's bytes differ (so a reader handed the wrong version fails its hash check).
      sequence++;
      if (data.byteLength >= 16) {
        data.writeDoubleLE(sharedNow(), 0);
        data.writeUInt32LE(sequence, 8);
      }
      const startedAt = sharedNow();
      try {
        const info = await client.publish(task.modelId, data, { chunkBytes: task.chunkBytes, archived: task.archived ?? false });
        versions.push({ versionNumber: info.version_number, startedAt, repliedAt: sharedNow(), bytes: task.versionBytes });
      } catch (error) {
        if (stop.aborted) {
          break;
        }
        errors++;
        firstError ??= errorText(error);
      }
    }
  } finally {
    client.close();
  }
  return { role: "publisher", versions, errors, firstError };
}
