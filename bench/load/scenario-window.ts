/**
 * HTTP/2 flow-control windows over a link with a round trip: one 64 MiB
 * transient version uploaded and downloaded through bench/load/delay-proxy.ts
 * (delayMs each way), with the server's receive window at Node's 64 KiB
 * default ("before", COGMENT_MODEL_REGISTRY_HTTP2_WINDOW_SIZE=0) and at the
 * registry's default of 8 MiB ("after"). Downloads use an 8 MiB client window
 * (see transfer.ts); "before" also downloads with grpc-js's default client window.
 */
import type { BenchRecord } from "../support/bench-record.js";
import { sharedNow } from "../support/clock.js";
import { type Generator, killAll, spawnGenerator } from "./generators.js";
import { type LoadOptions, MB, MODEL_ID, PUBLISH_CHUNK_BYTES, prepareModel, resourceMetrics, withServer } from "./scenario-support.js";
import { readMachineBusySeconds } from "../support/proc-stats.js";
import { MIB } from "../support/server-process.js";

export interface WindowScenario {
  readonly versionBytes: number;
  readonly delayMs: number;
  /** The server's HTTP/2 window; 0 = Node's default. */
  readonly serverWindowBytes: number;
}

const TIMEOUT_MS = 150_000;

export function runWindow(options: LoadOptions, scenario: WindowScenario): Promise<BenchRecord> {
  const env = { COGMENT_MODEL_REGISTRY_HTTP2_WINDOW_SIZE: String(scenario.serverWindowBytes) };
  return withServer(options, { env }, async (server) => {
    await prepareModel(server.address, 0);
    const generators: Generator[] = [];
    try {
      const proxy = spawnGenerator({ role: "proxy", targetPort: server.port, delayMs: scenario.delayMs });
      generators.push(proxy);
      const proxyPort = await proxy.ready;
      if (proxyPort === undefined) {
        throw new Error("the delay proxy reported no port");
      }
      const transfer = spawnGenerator({
        role: "transfer",
        address: `127.0.0.1:${proxyPort}`,
        modelId: MODEL_ID,
        versionBytes: scenario.versionBytes,
        chunkBytes: PUBLISH_CHUNK_BYTES,
        downloadWithDefaultWindow: scenario.serverWindowBytes === 0,
      });
      generators.push(transfer);
      await transfer.ready;
      const startedAt = sharedNow();
      const serverCpu0 = server.cpuSeconds();
      const machine0 = readMachineBusySeconds();
      const unwindowed = { windowStart: startedAt, windowEnd: Number.POSITIVE_INFINITY };
      proxy.start(unwindowed);
      transfer.start(unwindowed);
      const result = await transfer.resultWithin(TIMEOUT_MS);
      const serverCpu = server.cpuSeconds() - serverCpu0;
      const machineBusySeconds = readMachineBusySeconds() - machine0;
      const seconds = (sharedNow() - startedAt) / 1000;
      proxy.stop();
      if (result.role !== "transfer") {
        throw new Error("unexpected transfer result");
      }
      const mbps = (ms: number): number => scenario.versionBytes / MB / (ms / 1000);
      const movedBytes = scenario.versionBytes * (result.downloadDefaultWindow === undefined ? 2 : 3);
      const hashOk = result.download.hashOk && (result.downloadDefaultWindow?.hashOk ?? true);
      const sample = {
        seconds,
        serverCpuSeconds: serverCpu,
        generatorCpuSeconds: 0,
        machineBusySeconds,
        serverPeakRssBytes: server.memory().peakRssBytes,
      };
      const resources = resourceMetrics(sample, server, movedBytes);
      return {
        scenario: "window",
        params: {
          serverWindow: scenario.serverWindowBytes === 0 ? "64KiB (before)" : "8MiB (after)",
          versionMiB: scenario.versionBytes / MIB,
          rttMs: 2 * scenario.delayMs,
        },
        metrics: {
          uploadMBps: mbps(result.uploadMs),
          downloadMBps: mbps(result.download.ms),
          downloadDefaultClientWindowMBps: result.downloadDefaultWindow === undefined ? null : mbps(result.downloadDefaultWindow.ms),
          hashMismatches: hashOk ? 0 : 1,
          serverCpuSecPerGB: resources.serverCpuSecPerGB ?? null,
          serverPeakRssMiB: resources.serverPeakRssMiB ?? null,
          cacheBudgetMiB: resources.cacheBudgetMiB ?? null,
          rssOverBudgetMiB: resources.rssOverBudgetMiB ?? null,
        },
      };
    } finally {
      killAll(generators);
    }
  });
}
