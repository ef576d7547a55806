/**
 * Where shared mode's CPU goes per 16 MiB version (issue #17), one step at a time, on an otherwise
 * idle set of processes: a single-mode server S, two shared instances A and B on one redis-server
 * (AOF, `appendfsync always`, the recommended settings), the cluster bench's setup without its
 * 8 concurrent readers. Each version goes through the steps in turn, as in a broadcast (published,
 * then read); CPU ms per version of each process and step (utime + stime from /proc, 10 ms ticks,
 * summed over `--versions` versions; Redis with its rewrite children):
 *
 *   publish     the same bytes published to S and to A (the upload, hash, cache; A also streams to Redis)
 *   read own    each version read once from the instance it was published to (served from its cache)
 *   read B      each version read once on B (read through from Redis: GETs, CRC-32 check, copy, then served)
 *   read B (cached)  the same again (B's cache: the serving alone)
 *
 * So A's publish − S's publish is what writing to Redis costs the uploading instance, and B's first
 * read − B's cached read what a read-through costs an instance that did not upload.
 *
 *   npx node dist/bench/micro/shared-cpu-breakdown.js [--rounds 3] [--versions 8] [--mib 16]
 */
import { randomBytes } from "node:crypto";
import { withCluster } from "../load/cluster-servers.js";
import { cleanupNow } from "../support/cleanup.js";
import { createBenchClient, fetchVersionData, type RegistryClient } from "../support/bench-client.js";
import { median } from "../support/percentiles.js";
import { GIB, startBenchServer } from "../support/server-process.js";
import { argument } from "../support/cli-argument.js";

const rounds = Number(argument("rounds", "3"));
const versions = Number(argument("versions", "8"));
const versionBytes = Number(argument("mib", "16")) * 1024 * 1024;
const WINDOW_BYTES = 8 * 1024 * 1024;

type Step = "publish" | "read own" | "read B" | "read B (cached)";
/** ms of CPU per version, by step and process, one value per round. */
const results = new Map<string, number[]>();

function record(step: Step, part: string, cpuSeconds: number): void {
  const key = `${step}\t${part}`;
  const values = results.get(key) ?? [];
  values.push((cpuSeconds * 1000) / versions);
  results.set(key, values);
}

/** CPU seconds of each named process spent while `work` runs. */
async function measured(parts: () => Record<string, number>, work: () => Promise<void>): Promise<Record<string, number>> {
  await new Promise((resolve) => setTimeout(resolve, 100));
  const before = parts();
  await work();
  const after = parts();
  return Object.fromEntries(Object.entries(after).map(([name, seconds]) => [name, seconds - (before[name] ?? 0)]));
}

async function readOnce(client: RegistryClient, modelId: string, versionNumber: number): Promise<void> {
  const fetched = await fetchVersionData(client, modelId, versionNumber);
  if (fetched.bytes !== versionBytes) throw new Error(`read ${fetched.bytes} bytes of version ${versionNumber}, expected ${versionBytes}`);
}

/** Runs the steps once per payload, as a broadcast does (each version published, then read), summing each step's CPU per process. */
async function broadcast(
  payloads: readonly Buffer[],
  parts: () => Record<string, number>,
  steps: readonly (readonly [Step, (versionNumber: number) => Promise<void>])[],
  publish: (payload: Buffer) => Promise<number>,
): Promise<Map<Step, Record<string, number>>> {
  const totals = new Map<Step, Record<string, number>>();
  const add = (step: Step, spent: Record<string, number>): void => {
    const total = totals.get(step) ?? {};
    for (const [name, seconds] of Object.entries(spent)) total[name] = (total[name] ?? 0) + seconds;
    totals.set(step, total);
  };
  for (const payload of payloads) {
    let versionNumber = 0;
    add("publish", await measured(parts, async () => void (versionNumber = await publish(payload))));
    for (const [step, work] of steps) add(step, await measured(parts, () => work(versionNumber)));
  }
  return totals;
}

async function round(payloads: readonly Buffer[]): Promise<void> {
  const single = await startBenchServer({ cacheMaxBytes: GIB });
  const singleClient = createBenchClient(single.address, { windowBytes: WINDOW_BYTES });
  try {
    await singleClient.createModel("m");
    const totals = await broadcast(
      payloads,
      () => ({ S: single.cpuSeconds() }),
      [["read own", (versionNumber) => readOnce(singleClient, "m", versionNumber)]],
      async (payload) => Number((await singleClient.publish("m", payload)).version_number),
    );
    for (const [step, spent] of totals) record(step, "S", spent.S ?? 0);
  } finally {
    singleClient.close();
    await single.stop();
  }

  await withCluster(2, { cacheMaxBytes: GIB, appendfsync: "always" }, async (cluster) => {
    const [aAddress, bAddress] = cluster.addresses as [string, string];
    const a = createBenchClient(aAddress, { windowBytes: WINDOW_BYTES });
    const b = createBenchClient(bAddress, { windowBytes: WINDOW_BYTES });
    try {
      await a.createModel("m");
      const totals = await broadcast(
        payloads,
        () => cluster.server.cpuSecondsByPart?.() ?? {},
        [
          ["read own", (versionNumber) => readOnce(a, "m", versionNumber)],
          ["read B", (versionNumber) => readOnce(b, "m", versionNumber)],
          ["read B (cached)", (versionNumber) => readOnce(b, "m", versionNumber)],
        ],
        async (payload) => Number((await a.publish("m", payload)).version_number),
      );
      for (const [step, spent] of totals) {
        for (const part of ["A", "B", "redis", "redisChildren"]) record(step, part, spent[part] ?? 0);
      }
    } finally {
      a.close();
      b.close();
    }
  });
}

async function main(): Promise<void> {
  const payloads = Array.from({ length: versions }, () => randomBytes(versionBytes));
  process.stderr.write(`shared-cpu-breakdown: ${rounds} rounds, ${versions} versions of ${versionBytes} bytes; ${new Date().toISOString()}\n`);
  for (let i = 0; i < rounds; i++) {
    await round(payloads);
    process.stderr.write(`  round ${i + 1} done\n`);
  }
  process.stdout.write("step\tprocess\tCPU ms per version, median [per round]\n");
  for (const [key, values] of results) {
    process.stdout.write(`${key}\t${median(values)?.toFixed(1)} [${values.map((v) => v.toFixed(1)).join(", ")}]\n`);
  }
}

main()
  .catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  })
  .finally(cleanupNow);
