/**
 * A transient version read through from Redis (issue #17), alone: instance A publishes a version,
 * instance B (no copy) serves it to `--readers` concurrent readers; per read, the time from the
 * request to the first data chunk and to the last one; then one more read on B (from its cache now,
 * the floor: the same reads without Redis). With `--base other/dist/bundle/main.js` each
 * round runs this build and the other one in turn (order rotated), medians per build (a comma list
 * of bundles: base, base2, ...).
 *
 *   npx node dist/bench/load/read-through.js [--rounds 4] [--versions 6] [--mib 16] [--readers 2]
 *       [--base /path/to/dist/bundle/main.js]
 */
import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import type * as grpc from "@grpc/grpc-js";
import { killAllRedisServers, startRedisServer } from "../../test/support/redis-server.js";
import { RegistryClient } from "../../test/support/registry-client.js";
import { MAIN_FILE, killAllServers, spawnServer } from "../../test/support/server-process.js";
import { makeArchiveDir } from "../../test/support/test-server.js";
import { median } from "../support/percentiles.js";
import { argument } from "../support/cli-argument.js";

const rounds = Number(argument("rounds", "4"));
const versions = Number(argument("versions", "6"));
const versionBytes = Number(argument("mib", "16")) * 1024 * 1024;
const readers = Number(argument("readers", "2"));
const base = argument("base", "");
/** --base a,b: several other bundles, named base, base2, ... */
const builds: [string, string][] = [
  ["this", MAIN_FILE],
  ...base
    .split(",")
    .filter((file) => file !== "")
    .map((file, i): [string, string] => [i === 0 ? "base" : `base${i + 1}`, file]),
];

/** One RetrieveVersionData: ms to the first data chunk and to the end. */
function timedRead(client: RegistryClient, modelId: string, versionNumber: number): Promise<{ firstMs: number; lastMs: number }> {
  const started = performance.now();
  const fn = client.raw.RetrieveVersionData as (req: object) => grpc.ClientReadableStream<{ data_chunk: Buffer }>;
  const call = fn.call(client.raw, { model_id: modelId, version_number: versionNumber });
  let firstMs: number | undefined;
  let bytes = 0;
  return new Promise((resolve, reject) => {
    call.on("data", (message) => {
      firstMs ??= performance.now() - started;
      bytes += message.data_chunk.length;
    });
    call.on("error", reject);
    call.on("end", () =>
      bytes === versionBytes && firstMs !== undefined
        ? resolve({ firstMs, lastMs: performance.now() - started })
        : reject(new Error(`read ${bytes} bytes of ${versionBytes}`)),
    );
  });
}

interface Timings {
  first: number[];
  last: number[];
  cachedFirst: number[];
  cachedLast: number[];
}

async function runBuild(mainFile: string): Promise<Timings> {
  const redis = await startRedisServer(undefined, { appendOnly: true });
  const archiveDir = await makeArchiveDir();
  const env = { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir, COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url };
  const servers = [await spawnServer(env, 15_000, mainFile), await spawnServer(env, 15_000, mainFile)];
  // An 8 MiB receive window, as the broadcast readers have: with grpc-js's 64 KiB, sending waits for a window update every 64 KiB.
  const [a, b] = servers.map((server) => new RegistryClient(`127.0.0.1:${server.port}`, { "grpc-node.flow_control_window": 8 * 1024 * 1024 })) as [
    RegistryClient,
    RegistryClient,
  ];
  const timings: Timings = { first: [], last: [], cachedFirst: [], cachedLast: [] };
  try {
    await a.createModel("through");
    for (let version = 1; version <= versions; version++) {
      await a.publish("through", randomBytes(versionBytes));
      const reads = await Promise.all(Array.from({ length: readers }, () => timedRead(b, "through", version)));
      for (const read of reads) {
        timings.first.push(read.firstMs);
        timings.last.push(read.lastMs);
      }
      const cached = await timedRead(b, "through", version);
      timings.cachedFirst.push(cached.firstMs);
      timings.cachedLast.push(cached.lastMs);
    }
  } finally {
    a.close();
    b.close();
    for (const server of servers) {
      server.child.kill("SIGKILL");
      await server.exited;
    }
    await redis.close();
    await rm(archiveDir, { recursive: true, force: true });
  }
  return timings;
}

async function main(): Promise<void> {
  const all = new Map<string, Timings>(builds.map(([name]) => [name, { first: [], last: [], cachedFirst: [], cachedLast: [] }]));
  process.stderr.write(`read-through: ${rounds} rounds × ${builds.map(([name]) => name).join(", ")}; ${versions} versions of ${versionBytes} bytes, ${readers} readers on B; ${new Date().toISOString()}\n`);
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < builds.length; i++) {
      const [name, mainFile] = builds[(i + round) % builds.length] as [string, string];
      const result = await runBuild(mainFile);
      const totals = all.get(name);
      for (const key of ["first", "last", "cachedFirst", "cachedLast"] as const) {
        totals?.[key].push(...result[key]);
      }
      process.stderr.write(
        `  round ${round + 1} ${name}: first chunk p50 ${median(result.first)?.toFixed(1)} ms, last p50 ${median(result.last)?.toFixed(1)} ms; ` +
          `cached: first ${median(result.cachedFirst)?.toFixed(1)} ms, last ${median(result.cachedLast)?.toFixed(1)} ms\n`,
      );
    }
  }
  for (const [name, { first, last, cachedFirst, cachedLast }] of all) {
    const p50 = { firstChunkP50Ms: median(first), lastChunkP50Ms: median(last), cachedFirstChunkP50Ms: median(cachedFirst), cachedLastChunkP50Ms: median(cachedLast) };
    process.stdout.write(`${JSON.stringify({ build: name, reads: first.length, ...p50 })}\n`);
  }
}

main()
  .catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    killAllServers();
    killAllRedisServers();
  });
