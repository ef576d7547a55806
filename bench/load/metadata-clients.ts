/** Clients asking for the latest version's info in a tight loop, each on its own connection. */
import { createBenchClient, errorText } from "../support/bench-client.js";
import { sharedNow, sleep } from "../support/clock.js";
import type { MeasuredWindow, MetadataResult, MetadataTask } from "./generator-protocol.js";

const MAX_ERRORS = 100;

export async function runMetadataClients(task: MetadataTask, window: MeasuredWindow, stop: AbortSignal): Promise<MetadataResult> {
  const latenciesMs: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const clients = Array.from({ length: task.count }, () => createBenchClient(task.address));
  const loop = async (index: number): Promise<void> => {
    const client = clients[index];
    if (client === undefined) {
      return;
    }
    while (!stop.aborted && sharedNow() < window.windowEnd && errors < MAX_ERRORS) {
      const startedAt = sharedNow();
      try {
        await client.retrieveVersionInfos({ model_id: task.modelId, version_numbers: [-1] });
      } catch (error) {
        errors++;
        firstError ??= errorText(error);
        await sleep(10);
        continue;
      }
      const endedAt = sharedNow();
      if (endedAt >= window.windowStart && endedAt < window.windowEnd) {
        latenciesMs.push(endedAt - startedAt);
      }
    }
  };
  try {
    await Promise.all(clients.map((_, index) => loop(index)));
  } finally {
    for (const client of clients) {
      client.close();
    }
  }
  return { role: "metadata", latenciesMs, errors, firstError };
}
