/** Clients asking for the latest version's info in a tight loop, each on its own connection. */
import { createBenchClient } from "../support/bench-client.js";
import { runCallLoops } from "./call-loops.js";
import type { MeasuredWindow, MetadataResult, MetadataTask } from "./generator-protocol.js";

export async function runMetadataClients(task: MetadataTask, window: MeasuredWindow, stop: AbortSignal): Promise<MetadataResult> {
  const clients = Array.from({ length: task.count }, () => createBenchClient(task.address));
  const result = await runCallLoops(
    clients,
    (client) => client.retrieveVersionInfos({ model_id: task.modelId, version_numbers: [-1] }),
    window,
    stop,
  );
  return { role: "metadata", ...result };
}
