/**
 * What the exact version-number record (written at every commit, see
 * src/state/version-numbering.ts) costs a publisher: transient versions of 1 MiB and 16 MiB
 * published back to back through the Registry (real archive store on a temp dir, no gRPC), with
 * the record written and with it replaced by a no-op, alternating; plus the record write alone.
 * Wall time and this process's CPU per publish, medians of the rounds. JSON lines on stdout.
 *
 *   node dist/bench/micro/version-record.bench.js [--rounds=N]
 */
import { randomFillSync } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type ArchiveStore, createFsArchiveStore, inlineFileWriter } from "../../src/archive/index.js";
import { createSha256 } from "../../src/data/index.js";
import { createLogger } from "../../src/logger.js";
import { Registry } from "../../src/registry/index.js";

const MIB = 1024 * 1024;
const CASES = [
  { versionBytes: MIB, publishes: 300 },
  { versionBytes: 16 * MIB, publishes: 40 },
] as const;
const RECORD_WRITES = 5000;

interface Sample {
  readonly wallMs: number;
  readonly cpuUs: number;
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
};

async function measure(count: number, body: () => Promise<unknown>): Promise<Sample> {
  const cpuBefore = process.cpuUsage();
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    await body();
  }
  const wallNs = Number(process.hrtime.bigint() - start);
  const cpu = process.cpuUsage(cpuBefore);
  return { wallMs: wallNs / 1e6 / count, cpuUs: (cpu.user + cpu.system) / count };
}

async function openRegistry(archive: ArchiveStore): Promise<Registry> {
  const sha256 = await createSha256("node-crypto");
  const registry = await Registry.open({
    archive,
    cacheMaxBytes: 256 * MIB,
    cacheExpirationMs: 0,
    cachePruneCount: 1,
    chunkSize: 2 * MIB,
    hash: async (segments) => sha256(segments),
    log: createLogger("silent"),
  });
  await registry.createOrUpdateModel({ modelId: "bench", userData: {} });
  return registry;
}

async function main(): Promise<void> {
  const rounds = Number(process.argv.find((arg) => arg.startsWith("--rounds="))?.slice("--rounds=".length) ?? 5);
  const root = await mkdtemp(path.join(tmpdir(), "mr-record-bench-"));
  try {
    const store = createFsArchiveStore({ root, writer: inlineFileWriter });
    await store.open();
    const variants: Record<string, ArchiveStore> = {
      record: store,
      "no record": { ...store, overwriteMeta: () => Promise.resolve() },
    };
    for (const { versionBytes, publishes } of CASES) {
      const data = randomFillSync(Buffer.allocUnsafe(versionBytes));
      const samples: Record<string, Sample[]> = { record: [], "no record": [] };
      for (let round = 0; round < rounds; round++) {
        for (const [name, archive] of Object.entries(variants)) {
          const registry = await openRegistry(archive);
          const publish = async (): Promise<void> => {
            const upload = await registry.beginUpload({ modelId: "bench", archived: false, creationTimestamp: 0n, dataHash: "", dataSize: versionBytes, userData: {} });
            await upload.append(data);
            await upload.finish();
          };
          await measure(5, publish); // warm-up (and the first, flushed record of the run)
          samples[name]?.push(await measure(publishes, publish));
          registry.close();
        }
      }
      for (const [name, list] of Object.entries(samples)) {
        const line = {
          scenario: "version-record",
          versionMiB: versionBytes / MIB,
          variant: name,
          rounds,
          publishMsP50: Number(median(list.map((s) => s.wallMs)).toFixed(3)),
          publishCpuUsP50: Number(median(list.map((s) => s.cpuUs)).toFixed(1)),
        };
        process.stdout.write(`${JSON.stringify(line)}\n`);
      }
    }
    const writes: Sample[] = [];
    for (let round = 0; round < rounds; round++) {
      writes.push(await measure(RECORD_WRITES, () => store.overwriteMeta("bench", "version-record", "next=1 boot=x state=running", { durable: false })));
    }
    process.stdout.write(
      `${JSON.stringify({
        scenario: "version-record",
        variant: "record write alone",
        rounds,
        writeUsP50: Number((median(writes.map((s) => s.wallMs)) * 1000).toFixed(1)),
        writeCpuUsP50: Number(median(writes.map((s) => s.cpuUs)).toFixed(1)),
      })}\n`,
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();
