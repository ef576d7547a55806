/**
 * Small calls from 16 clients (issue #15): RetrieveVersionInfos([-1]), CreateVersion of a
 * small transient version, CreateOrUpdateModel; against the registry or the bare grpc-js
 * floor (floor-server.ts), with the same lean clients: ops/s, latency, server CPU per call.
 */
import type { BenchRecord } from "../support/bench-record.js";
import type { SmallCallClient, SmallCallsTask } from "./generator-protocol.js";
import { measureWindow, resultsOf } from "./measure-window.js";
import { summarize } from "../support/percentiles.js";
import { type LoadOptions, MODEL_ID, prepareModel, resourceMetrics, split, withServer } from "./scenario-support.js";
import type { SmallCall } from "./small-requests.js";

export type SmallServer = "registry" | "floor";

/** Well above what 16 clients on 2 cores can call (Go's reference: 17,800 calls/s). */
export const SMALL_CALLS_PEER_NEW_STREAMS_PER_SECOND = 1_000_000;

export interface SmallScenario {
  readonly call: SmallCall;
  readonly client: SmallCallClient;
  readonly server: SmallServer;
  readonly clients: number;
  readonly clientProcs: number;
  /** Data bytes per version ("create-version"). */
  readonly bodyBytes: number;
}

export function runSmallCalls(options: LoadOptions, scenario: SmallScenario): Promise<BenchRecord> {
  // The 16 clients stand for 16 hosts but share 127.0.0.1: the per-address limit on new calls
  // (10,000/s by default, there against rapid-reset floods) would ban them all once the server
  // answers faster than that. The limiter still counts every call; only its threshold is raised.
  const env = { COGMENT_MODEL_REGISTRY_PEER_NEW_STREAMS_PER_SECOND: String(SMALL_CALLS_PEER_NEW_STREAMS_PER_SECOND) };
  return withServer(options, { floor: scenario.server === "floor", env }, async (server) => {
    if (scenario.call !== "create-model") {
      await prepareModel(server.address, scenario.call === "infos" ? 1024 : 0);
    }
    const tasks = split(scenario.clients, scenario.clientProcs).map(
      ({ count, first }): SmallCallsTask => ({
        role: "small-calls",
        client: scenario.client,
        address: server.address,
        call: scenario.call,
        modelId: MODEL_ID,
        count,
        firstClient: first,
        bodyBytes: scenario.bodyBytes,
      }),
    );
    const measurement = await measureWindow(server, tasks, options);
    const results = resultsOf(measurement.results, "small-calls");
    const latency = summarize(results.flatMap((result) => result.latenciesMs));
    const opsPerSec = latency.count / measurement.seconds;
    const firstError = results.find((result) => result.firstError !== undefined)?.firstError;
    if (firstError !== undefined) {
      options.log(`  first error: ${firstError}`);
    }
    return {
      scenario: "small",
      params: { call: scenario.call, server: scenario.server, client: scenario.client, clients: scenario.clients, clientProcs: tasks.length, bodyBytes: scenario.bodyBytes },
      metrics: {
        opsPerSec,
        wallUsPerOp: opsPerSec > 0 ? 1e6 / opsPerSec : null,
        latencyP50Ms: latency.p50,
        latencyP99Ms: latency.p99,
        serverCpuUsPerOp: latency.count === 0 ? null : (measurement.serverCpuSeconds * 1e6) / latency.count,
        errors: results.length === tasks.length ? results.reduce((total, result) => total + result.errors, 0) : 1,
        ...resourceMetrics(measurement, server, 0),
      },
    };
  });
}

/** BENCH_SMALL_CLIENT=raw (the default) or node-http2: what makes the small calls. */
export function smallCallClient(env: NodeJS.ProcessEnv = process.env): SmallCallClient {
  const name = env.BENCH_SMALL_CLIENT ?? "raw";
  if (name !== "raw" && name !== "node-http2") {
    throw new Error(`BENCH_SMALL_CLIENT: unknown client "${name}" (raw, node-http2)`);
  }
  return name;
}
