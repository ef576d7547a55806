/**
 * The registry's share of a small CreateVersion, without gRPC: 16 publishers of 1 KiB transient
 * versions to one model through an in-process Registry on a real archive directory (the version-
 * number record written as the server writes it), each publish starting in its own event-loop
 * callback (as each upload's last message does in the server). Per publish: this process's CPU,
 * and the young-generation collections (scavenges: with a 1 MiB semi-space, ~1 MiB allocated each). Several
 * builds alternate round by round (`--src=DIR,DIR`: compiled `src` directories, e.g. this build's
 * and a base's `dist/src`), order rotated each round; JSON lines on stdout, medians last.
 *
 *   node --single-threaded-gc --max-semi-space-size=8 dist/bench/micro/commit-path.bench.js \
 *     [--src=dist/src,/work/base/dist/src] [--rounds=8] [--publishes=40000]
 */
import { randomFillSync } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { PerformanceObserver } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import type * as ArchiveModule from "../../src/archive/index.js";
import type * as DataModule from "../../src/data/index.js";
import type * as LoggerModule from "../../src/logger.js";
import type * as RegistryModule from "../../src/registry/index.js";

const PUBLISHERS = 16;
const VERSION_BYTES = 1024;

interface Build {
  readonly name: string;
  readonly Registry: typeof RegistryModule.Registry;
  readonly archive: typeof ArchiveModule;
  readonly data: typeof DataModule;
  readonly logger: typeof LoggerModule;
}

interface Sample {
  readonly build: string;
  readonly round: number;
  readonly cpuUs: number;
  readonly scavengesPer1k: number;
}

const argument = (name: string): string | undefined =>
  process.argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
};

async function loadBuild(srcDir: string): Promise<Build> {
  const at = (file: string): string => pathToFileURL(path.resolve(srcDir, file)).href;
  const registry = (await import(at("registry/index.js"))) as typeof RegistryModule;
  return {
    name: srcDir,
    Registry: registry.Registry,
    archive: (await import(at("archive/index.js"))) as typeof ArchiveModule,
    data: (await import(at("data/index.js"))) as typeof DataModule,
    logger: (await import(at("logger.js"))) as typeof LoggerModule,
  };
}

/** Young-generation collections so far (PerformanceObserver "gc" entries of kind minor). */
let scavenges = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if ((entry as unknown as { detail?: { kind?: number } }).detail?.kind === 1) {
      scavenges++;
    }
  }
}).observe({ entryTypes: ["gc"] });

async function run(build: Build, root: string, publishes: number): Promise<Omit<Sample, "build" | "round">> {
  const store = build.archive.createFsArchiveStore({ root, writer: build.archive.inlineFileWriter });
  await store.open();
  const sha256 = await build.data.createSha256("node-crypto");
  const registry = await build.Registry.open({
    archive: store,
    cacheMaxBytes: 256 * 1024 * 1024,
    cacheExpirationMs: 0,
    cachePruneCount: 1,
    chunkSize: 2 * 1024 * 1024,
    // As the server's worker pool hashes 1 KiB: on the calling thread, a settled promise.
    hash: (segments) => Promise.resolve(sha256(segments)),
    log: build.logger.createLogger("silent"),
    bootId: "bench",
  });
  await registry.createOrUpdateModel({ modelId: "bench", userData: {} });
  const data = randomFillSync(Buffer.allocUnsafe(VERSION_BYTES));
  const header = { modelId: "bench", archived: false, creationTimestamp: 0n, dataHash: "", dataSize: VERSION_BYTES, userData: {} };
  const publishOne = async (): Promise<void> => {
    const upload = await registry.beginUpload(header);
    await upload.append(data);
    await upload.finish();
  };
  let left = publishes;
  const publisher = async (): Promise<void> => {
    while (left-- > 0) {
      // Each publish starts in its own callback, as an upload's last message arrives in the server.
      await new Promise<void>((resolve) => setImmediate(resolve));
      await publishOne();
    }
  };
  left = 2000; // warm-up
  await Promise.all(Array.from({ length: PUBLISHERS }, publisher));
  left = publishes;
  const scavengesBefore = scavenges;
  const cpuBefore = process.cpuUsage();
  await Promise.all(Array.from({ length: PUBLISHERS }, publisher));
  const cpu = process.cpuUsage(cpuBefore);
  await new Promise<void>((resolve) => setImmediate(resolve)); // the last gc entries
  const scavenged = scavenges - scavengesBefore;
  registry.close();
  await store.close?.();
  return { cpuUs: (cpu.user + cpu.system) / publishes, scavengesPer1k: (scavenged * 1000) / publishes };
}

async function main(): Promise<void> {
  const rounds = Number(argument("rounds") ?? 8);
  const publishes = Number(argument("publishes") ?? 40_000);
  const builds = await Promise.all((argument("src") ?? "dist/src").split(",").map(loadBuild));
  const samples: Sample[] = [];
  for (let round = 0; round < rounds; round++) {
    const order = builds.map((_, index) => builds[(index + round) % builds.length] as Build);
    for (const build of order) {
      const root = await mkdtemp(path.join(tmpdir(), "mr-commit-bench-"));
      try {
        const sample = { build: build.name, round, ...(await run(build, root, publishes)) };
        samples.push(sample);
        process.stdout.write(`${JSON.stringify({ ...sample, cpuUs: Number(sample.cpuUs.toFixed(2)) })}\n`);
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    }
  }
  for (const build of builds) {
    const own = samples.filter((sample) => sample.build === build.name);
    const line: Record<string, unknown> = {
      build: build.name,
      rounds,
      publishes,
      cpuUsP50: Number(median(own.map((s) => s.cpuUs)).toFixed(2)),
      cpuUsRange: [Math.min(...own.map((s) => s.cpuUs)), Math.max(...own.map((s) => s.cpuUs))].map((v) => Number(v.toFixed(2))),
      scavengesPer1kP50: Number(median(own.map((s) => s.scavengesPer1k)).toFixed(2)),
    };
    const first = builds[0] as Build;
    if (build !== first) {
      const ratios = own.map((s) => s.cpuUs / (samples.find((o) => o.build === first.name && o.round === s.round) as Sample).cpuUs);
      line.cpuRatioToFirstP50 = Number(median(ratios).toFixed(3));
      line.cpuRatioRange = [Math.min(...ratios), Math.max(...ratios)].map((v) => Number(v.toFixed(3)));
    }
    process.stdout.write(`${JSON.stringify(line)}\n`);
  }
}

await main();
