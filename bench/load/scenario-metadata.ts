/** Many clients asking "what is the latest version?" as fast as they can. */
import type { BenchRecord } from "../support/bench-record.js";
import type { GeneratorTask } from "./generator-protocol.js";
import { measureWindow, resultsOf } from "./measure-window.js";
import { summarize } from "../support/percentiles.js";
import { type LoadOptions, MODEL_ID, prepareModel, resourceMetrics, split, withServer } from "./scenario-support.js";
import { MIB } from "../support/server-process.js";

export interface MetadataScenario {
  readonly clients: number;
  readonly clientProcs: number;
}

export function runMetadata(options: LoadOptions, scenario: MetadataScenario): Promise<BenchRecord> {
  return withServer(options, {}, async (server) => {
    await prepareModel(server.address, MIB);
    const tasks = split(scenario.clients, scenario.clientProcs).map(
      ({ count }): GeneratorTask => ({ role: "metadata", address: server.address, modelId: MODEL_ID, count }),
    );
    const measurement = await measureWindow(server, tasks, options);
    const results = resultsOf(measurement.results, "metadata");
    const latency = summarize(results.flatMap((result) => result.latenciesMs));
    const resources = resourceMetrics(measurement, server, 0);
    return {
      scenario: "metadata",
      params: { clients: scenario.clients, clientProcs: tasks.length },
      metrics: {
        opsPerSec: latency.count / measurement.seconds,
        latencyP50Ms: latency.p50,
        latencyP99Ms: latency.p99,
        serverCpuUsPerOp: latency.count === 0 ? null : (measurement.serverCpuSeconds * 1e6) / latency.count,
        errors: results.reduce((total, result) => total + result.errors, 0),
        ...resources,
      },
    };
  });
}
