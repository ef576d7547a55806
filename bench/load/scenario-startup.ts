/**
 * Start-up in `npm run bench` (issue #15): spawn to first served RPC of the server as
 * production starts it (`node --single-threaded-gc dist/bundle/main.js`), with an empty
 * archive and with `models` × `versions` archived versions (written in the original's
 * layout, page cache warm), next to three references of the same run: `node -e 0`
 * (spawn to exit), the bare grpc-js floor server (spawn to first served RPC) and the
 * server unbundled (tsc's dist/src/main.js, empty archive: what the bundle saves).
 * Interleaved runs after one discarded warm-up of each; medians. bench/startup.ts
 * is the detailed tool (RSS, lazy loading, a check of every model served).
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BenchRecord } from "../support/bench-record.js";
import { removeTempDir, trackTempDir } from "../support/cleanup.js";
import { percentile } from "../support/percentiles.js";
import { waitForQuietMachine } from "../support/quiet-machine.js";
import type { LoadOptions } from "./scenario-support.js";
import { generateArchive, modelIdOf } from "../startup/startup-archive.js";
import { UNBUNDLED_MAIN_FILE, nodeBaselineMs, probeStartup } from "../startup/startup-probe.js";

export interface StartupScenario {
  readonly runs: number;
  readonly models: number;
  readonly versions: number;
}

/** What is started, and from which archive. */
export type StartupCase = "registry-empty" | "registry-archive" | "registry-unbundled" | "floor" | "node-e-0";

const CASES: readonly StartupCase[] = ["registry-empty", "registry-archive", "registry-unbundled", "floor", "node-e-0"];
const START_TIMEOUT_MS = 60_000;
const QUIET_BUSY_CORES = 0.5;

export async function runStartup(options: LoadOptions, scenario: StartupScenario): Promise<BenchRecord[]> {
  const emptyDir = mkdtempSync(join(tmpdir(), "registry-bench-startup-empty-"));
  const archiveDir = mkdtempSync(join(tmpdir(), "registry-bench-startup-archive-"));
  trackTempDir(emptyDir);
  trackTempDir(archiveDir);
  try {
    const archive = await generateArchive(archiveDir, scenario.models, scenario.versions, 1024);
    options.log(`  ${archive.versions} archived versions written in ${archive.seconds.toFixed(1)} s`);
    const once = async (kase: StartupCase, run: number): Promise<number> => {
      switch (kase) {
        case "node-e-0":
          return nodeBaselineMs();
        case "floor":
          return (await probeStartup({ archiveDir: emptyDir, timeoutMs: START_TIMEOUT_MS, floor: true })).probe.spawnToFirstRpcMs;
        case "registry-empty":
          return (await probeStartup({ archiveDir: emptyDir, timeoutMs: START_TIMEOUT_MS })).probe.spawnToFirstRpcMs;
        case "registry-unbundled":
          return (await probeStartup({ archiveDir: emptyDir, timeoutMs: START_TIMEOUT_MS, mainFile: UNBUNDLED_MAIN_FILE })).probe.spawnToFirstRpcMs;
        case "registry-archive": {
          // Also read one model's versions, so a server that skipped the archive fails here.
          const modelId = modelIdOf((run * 37) % scenario.models);
          const { probe } = await probeStartup({ archiveDir, timeoutMs: START_TIMEOUT_MS, modelId });
          if (probe.versionInfos?.length !== scenario.versions) {
            throw new Error(`model "${modelId}": ${probe.versionInfos?.length ?? 0} versions served, ${scenario.versions} archived`);
          }
          return probe.spawnToFirstRpcMs;
        }
      }
    };
    const samples = new Map<StartupCase, number[]>(CASES.map((kase) => [kase, []]));
    for (let run = 0; run <= scenario.runs; run++) {
      for (const kase of CASES) {
        await waitForQuietMachine(QUIET_BUSY_CORES, options.quietWaitMs / 2, 250);
        const ms = await once(kase, run);
        if (run > 0) {
          samples.get(kase)?.push(ms);
        }
      }
    }
    return CASES.map((kase) => {
      const values = samples.get(kase) ?? [];
      return {
        scenario: "startup",
        params: { case: kase, archivedVersions: kase === "registry-archive" ? archive.versions : 0 },
        metrics: {
          // "node -e 0" is spawn to exit; the others spawn to the first RPC served.
          spawnToReadyMs: percentile(values, 50),
          p90Ms: percentile(values, 90),
          minMs: Math.min(...values),
          maxMs: Math.max(...values),
          runs: values.length,
        },
      };
    });
  } finally {
    removeTempDir(emptyDir);
    removeTempDir(archiveDir);
  }
}
