/**
 * Bounded soak test (not part of npm test):
 *
 *   node dist/bench/soak/soak.js [--duration=120s] [--clients=64] [--workers=4] [--quick]
 *                           [--cache-mib=256] [--expiration=10s] [--no-restart]
 *
 * Starts a real server on a fresh archive, then runs mixed traffic from
 * `clients` concurrent clients spread over `workers` processes for a fixed
 * time (soak-traffic.ts), sampling the server's VmRSS every second. Then it
 * checks that every acknowledged archived version is still there with the
 * data sent, that version numbers were unique and gap-free, and that RSS
 * stopped growing after the warm-up (the first 25% of the run); with the
 * restart check it does the archive check again on a restarted server.
 * Prints one JSON line and a human summary; exits 1 if any check failed.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomFillSync } from "node:crypto";
import { createBenchClient } from "../support/bench-client.js";
import { removeTempDir, trackTempDir } from "../support/cleanup.js";
import { sharedNow, sleep } from "../support/clock.js";
import { machineInfo } from "../support/machine-info.js";
import { split } from "../load/scenario-support.js";
import { type BenchServer, MIB, startBenchServer } from "../support/server-process.js";
import { type SoakOptions, parseSoakArgs } from "./soak-args.js";
import { sha256Base64 } from "./soak-calls.js";
import { mergeResults } from "./soak-merge.js";
import type { Ack, SoakMix, SoakResult } from "./soak-protocol.js";
import { soakSummary } from "./soak-report.js";
import { judgeRss, startRssSampler } from "./soak-rss.js";
import { checkLatestFetches, checkNumbering, verifyArchived } from "./soak-verify.js";
import { type SoakWorker, spawnSoakWorker } from "./soak-workers.js";

const SHARED_MODELS = Array.from({ length: 8 }, (_, i) => `soak-model-${i}`);
const SEED_BYTES = 4096;
const WARMUP_SHARE = 0.25;
const CALL_DEADLINE_MS = 30_000;
/** Longer than a call's deadline: no call is cut by the end of the run. */
const GRACE_MS = 35_000;
const START_DELAY_MS = 1000;
const PROGRESS_EVERY_MS = 10_000;
/** After the checks, the server idles this long before a last RSS sample (does memory come back?). */
const IDLE_MS = 10_000;
const MIX: SoakMix = {
  publishTransient: 22,
  publishArchived: 8,
  fetchLatest: 20,
  fetchRandom: 22,
  listModels: 6,
  listVersions: 12,
  scratch: 10,
};

const log = (line: string): void => void process.stderr.write(`${line}\n`);

function serverEnv(archiveDir: string, options: SoakOptions): Record<string, string> {
  return {
    COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir,
    COGMENT_MODEL_REGISTRY_VERSION_CACHE_EXPIRATION: options.expiration,
  };
}

/** Creates the shared models, each with one archived version so that version -1 always exists. */
async function seedSharedModels(address: string): Promise<Ack[]> {
  const client = createBenchClient(address);
  try {
    const acks: Ack[] = [];
    for (const modelId of SHARED_MODELS) {
      await client.createModel(modelId, { purpose: "soak" });
      const data = randomFillSync(Buffer.allocUnsafe(SEED_BYTES));
      const info = await client.publish(modelId, data, { archived: true });
      acks.push({ modelId, versionNumber: info.version_number, archived: true, hash: sha256Base64(data), size: SEED_BYTES });
    }
    return acks;
  } finally {
    client.close();
  }
}

async function serverStatus(address: string): Promise<Record<string, string>> {
  const client = createBenchClient(address);
  try {
    return (await client.status(["*"])).statuses;
  } finally {
    client.close();
  }
}

interface Check {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

async function runSoak(options: SoakOptions, archiveDir: string, servers: BenchServer[], workers: SoakWorker[]): Promise<boolean> {
  const env = serverEnv(archiveDir, options);
  const server = await startBenchServer({ cacheMaxBytes: options.cacheMaxBytes, env });
  servers.push(server);
  log(`server pid ${server.pid} on ${server.address}, archive ${archiveDir}`);
  const seedAcks = await seedSharedModels(server.address);

  for (const [index, part] of split(options.clients, options.workers).entries()) {
    workers.push(
      spawnSoakWorker({
        address: server.address,
        worker: index,
        clients: part.count,
        firstClient: part.first,
        sharedModels: SHARED_MODELS,
        scratchPrefix: `soak-scratch-w${index}`,
        minBytes: 1024,
        maxBytes: 4 * MIB,
        chunkBytes: MIB,
        callDeadlineMs: CALL_DEADLINE_MS,
        maxOpsPerClient: 1_000_000,
        mix: MIX,
      }),
    );
  }
  await Promise.all(workers.map((worker) => worker.ready));

  const startAt = sharedNow() + START_DELAY_MS;
  const endAt = startAt + options.durationMs;
  const durationS = options.durationMs / 1000;
  const sampler = startRssSampler(server.pid, startAt);
  const serverCpuBefore = server.cpuSeconds();
  const workerCpuBefore = workers.map((worker) => worker.cpuSeconds());
  for (const worker of workers) {
    worker.start({ startAt, endAt }, GRACE_MS);
  }
  log(`soak: ${options.clients} clients in ${workers.length} processes for ${durationS} s`);
  const progress = setInterval(() => {
    const last = sampler.samples[sampler.samples.length - 1];
    serverStatus(server.address).then(
      (status) =>
        log(
          `  t=${last?.t.toFixed(0) ?? "?"} s  rss ${((last?.rssBytes ?? 0) / MIB).toFixed(0)} MiB  cache ${(Number(status.cache_used_bytes) / MIB).toFixed(0)} MiB ` +
            `in ${status.cached_versions} versions  evicted size ${status.cache_evictions_size} expired ${status.cache_evictions_expired}  uploads ${status.uploads_in_flight}`,
        ),
      (error: unknown) => log(`  status failed: ${String(error)}`),
    );
  }, PROGRESS_EVERY_MS);

  let results: SoakResult[];
  const workerErrors: string[] = [];
  try {
    const settled = await Promise.allSettled(workers.map((worker) => worker.resultWithin(endAt - sharedNow() + GRACE_MS + 30_000)));
    results = [];
    for (const outcome of settled) {
      if (outcome.status === "fulfilled") {
        results.push(outcome.value);
      } else {
        workerErrors.push(String(outcome.reason));
      }
    }
  } finally {
    clearInterval(progress);
  }
  const loadEndedAt = sharedNow();
  sampler.sampleNow();
  const serverCpu = server.cpuSeconds() - serverCpuBefore;
  const clientCpu = workers.reduce((sum, worker, i) => sum + worker.cpuSeconds() - (workerCpuBefore[i] ?? 0), 0);
  const loadSeconds = (loadEndedAt - startAt) / 1000;
  const cache = await serverStatus(server.address);
  const merged = mergeResults(results);
  log(`traffic done (${merged.calls} calls); verifying`);

  const allAcks = [...seedAcks, ...merged.acks];
  const sharedAcks = allAcks.filter((ack) => SHARED_MODELS.includes(ack.modelId));
  const archivedAcks = sharedAcks.filter((ack) => ack.archived);
  const live = await verifyArchived(server.address, archivedAcks);
  const numbering = checkNumbering(sharedAcks, SHARED_MODELS);
  const latest = checkLatestFetches(merged.latestFetches, allAcks);
  const rssAfterVerifyMiB = (sampler.sampleNow()?.rssBytes ?? 0) / MIB;
  log(`checks done; idling ${IDLE_MS / 1000} s`);
  await sleep(IDLE_MS);
  const rssAfterIdleMiB = (sampler.sampleNow()?.rssBytes ?? 0) / MIB;
  sampler.stop();
  const rss = judgeRss(sampler.samples, durationS, WARMUP_SHARE);

  let restart: Awaited<ReturnType<typeof verifyArchived>> | undefined;
  let restartMs: number | undefined;
  if (options.restartCheck) {
    await server.stop();
    log("server stopped; restarting on the same archive");
    const restartedAt = Date.now();
    const again = await startBenchServer({ cacheMaxBytes: options.cacheMaxBytes, env });
    servers.push(again);
    restartMs = Date.now() - restartedAt;
    restart = await verifyArchived(again.address, archivedAcks);
    await again.stop();
  }

  const tallyFailures = [...merged.failures, ...live.tally.failures, ...(restart?.tally.failures ?? [])];
  const checks: Check[] = [
    { name: "traffic processes", ok: workerErrors.length === 0, detail: workerErrors.length === 0 ? `${results.length} reported` : workerErrors.join("; ") },
    {
      name: "calls and checks during the run",
      ok: merged.failureCount === 0,
      detail: `${merged.failureCount} failure(s) in ${merged.calls} calls (allowed NOT_FOUND: ${Object.values(merged.expected).reduce((a, b) => a + b, 0)})`,
    },
    {
      name: "archived versions after the run",
      ok: live.tally.failureCount === 0,
      detail: `${live.versions} versions (${(live.bytes / MIB).toFixed(1)} MiB) read back in ${live.seconds.toFixed(1)} s, ${live.tally.failureCount} failure(s)`,
    },
    {
      name: "version numbering",
      ok: numbering.duplicates === 0 && numbering.gaps === 0,
      detail: `${numbering.versions} acknowledged versions of ${numbering.models} shared models: ${numbering.duplicates} duplicate(s), ${numbering.gaps} gap(s)${numbering.details.length > 0 ? `; ${numbering.details.slice(0, 3).join("; ")}` : ""}`,
    },
    {
      name: "version -1 fetches that raced a publish",
      ok: latest.unmatched === 0,
      detail: `${latest.checked} checked against all acknowledgements, ${latest.unmatched} unmatched${latest.details.length > 0 ? `; ${latest.details[0]}` : ""}`,
    },
    {
      name: "RSS after warm-up",
      ok: rss.ok,
      detail: `end ${rss.endMiB.toFixed(1)} MiB ≤ warm-up max ${rss.warmupMaxMiB.toFixed(1)} × 1.2 + 32 = ${rss.limitMiB.toFixed(1)} MiB`,
    },
  ];
  if (restart !== undefined) {
    checks.push({
      name: "archived versions after a restart",
      ok: restart.tally.failureCount === 0,
      detail: `restart to serving in ${restartMs} ms; ${restart.versions} versions read back in ${restart.seconds.toFixed(1)} s, ${restart.tally.failureCount} failure(s)`,
    });
  }
  const passed = checks.every((check) => check.ok);

  const summaryInput = {
    durationS,
    clients: options.clients,
    workers: workers.length,
    cacheMiB: options.cacheMaxBytes / MIB,
    expiration: options.expiration,
    ops: merged.ops,
    calls: merged.calls,
    outcomes: merged.outcomes,
    expected: merged.expected,
    latencyMs: merged.latencyMs,
    publishedMiB: merged.bytesPublished / MIB,
    fetchedMiB: merged.bytesFetched / MIB,
    rss,
    rssAfterVerifyMiB,
    rssAfterIdleMiB,
    cache,
    serverCpuCores: serverCpu / loadSeconds,
    clientCpuCores: clientCpu / loadSeconds,
    checks,
    failures: tallyFailures,
  };
  const json = {
    bench: "soak",
    passed,
    ...summaryInput,
    rssSamplesMiB: sampler.samples.map((s) => [Math.round(s.t * 10) / 10, Math.round((s.rssBytes / MIB) * 10) / 10]),
    archivedVerified: live.versions,
    archivedVerifiedAfterRestart: restart?.versions ?? null,
    acknowledged: { shared: sharedAcks.length, archivedShared: archivedAcks.length, total: allAcks.length },
    finalVerifyOutcomes: live.tally.outcomes,
    machine: machineInfo(),
    failures: tallyFailures.slice(0, 20),
  };
  process.stdout.write(`${JSON.stringify(json)}\n\n${soakSummary(summaryInput)}\n`);
  return passed;
}

async function main(): Promise<void> {
  const options = parseSoakArgs(process.argv.slice(2));
  const archiveDir = mkdtempSync(join(tmpdir(), "registry-soak-"));
  trackTempDir(archiveDir);
  const servers: BenchServer[] = [];
  const workers: SoakWorker[] = [];
  let passed = false;
  try {
    passed = await runSoak(options, archiveDir, servers, workers);
  } finally {
    for (const worker of workers) {
      worker.kill();
    }
    await Promise.all(servers.map((server) => server.stop()));
    removeTempDir(archiveDir);
  }
  process.exitCode = passed ? 0 : 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`soak: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
