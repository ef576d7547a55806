/**
 * How long an instance takes to catch up on its followed models after its Redis subscription came
 * back (issue #17): one instance following `models` models (each created and given one version
 * through it), its subscriber connection killed (`CLIENT KILL TYPE pubsub`) `rounds` times; the time
 * is the server's own "caught up on the followed models' changes" log line. Through a delay proxy
 * (`rttMs` > 0) the instance sees Redis at that round trip, as across a network. `--base` runs the
 * same against another build's main file, alternated round by round. Standalone:
 * `npm run build && npx node dist/bench/micro/redis-catch-up.js [models] [rounds] [rttMs] [--base=<main.js>]`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Redis } from "ioredis";
import { startRedisServer } from "../../test/support/redis-server.js";
import { RegistryClient } from "../../test/support/registry-client.js";
import { MAIN_FILE, type ServerProcess, logLinesWhen, spawnServer } from "../../test/support/server-process.js";
import { type DelayProxy, startDelayProxy } from "../load/delay-proxy.js";
import { summarize } from "../support/percentiles.js";

const CAUGHT_UP = "caught up on the followed models' changes after the Redis subscription came back";

interface Side {
  readonly name: string;
  readonly server: ServerProcess;
  readonly samplesMs: number[];
}

async function startSide(name: string, mainFile: string, redisUrl: string, models: number): Promise<Side> {
  const archiveDir = mkdtempSync(join(tmpdir(), "registry-bench-catch-up-"));
  const server = await spawnServer({ COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir, COGMENT_MODEL_REGISTRY_REDIS_URL: redisUrl, COGMENT_MODEL_REGISTRY_PORT: "0" }, 60_000, mainFile);
  server.exited.finally(() => rmSync(archiveDir, { recursive: true, force: true })).catch(() => undefined);
  const client = new RegistryClient(`127.0.0.1:${server.port}`);
  try {
    for (let i = 0; i < models; i++) {
      await client.createModel(`${name}-${i}`);
      await client.publish(`${name}-${i}`, Buffer.from(`v${i}`));
    }
  } finally {
    client.close();
  }
  return { name, server, samplesMs: [] };
}

export async function runRedisCatchUpBench(models: number, rounds: number, rttMs: number, baseMainFile: string | undefined): Promise<void> {
  const redis = await startRedisServer(undefined, { appendOnly: false });
  let proxy: DelayProxy | undefined;
  const admin = new Redis(redis.url);
  const sides: Side[] = [];
  try {
    proxy = rttMs > 0 ? await startDelayProxy({ targetPort: redis.port, delayMs: rttMs / 2 }) : undefined;
    const url = proxy === undefined ? redis.url : `redis://127.0.0.1:${proxy.port}`;
    sides.push(await startSide("head", MAIN_FILE, url, models));
    if (baseMainFile !== undefined) {
      sides.push(await startSide("base", baseMainFile, url, models));
    }
    for (let round = 0; round < rounds; round++) {
      for (const side of round % 2 === 0 ? sides : [...sides].reverse()) {
        const before = side.server.logLines.filter((line) => line.msg === CAUGHT_UP).length;
        // Every pubsub connection: the other side's too, so both catch up each time.
        await admin.call("CLIENT", "KILL", "TYPE", "pubsub");
        for (const each of sides) {
          const lines = await logLinesWhen(each.server, (line) => line.msg === CAUGHT_UP, before + 1, 60_000);
          const last = lines.at(-1);
          if (each === side && last !== undefined && lines.length > before) {
            each.samplesMs.push(Number(last.ms));
          }
        }
      }
    }
    for (const side of sides) {
      const summary = summarize(side.samplesMs);
      console.log(JSON.stringify({ side: side.name, models, rttMs, rounds: side.samplesMs.length, catchUpMsP50: summary.p50, samplesMs: side.samplesMs }));
    }
  } finally {
    for (const side of sides) {
      side.server.child.kill("SIGKILL");
      await side.server.exited;
    }
    admin.disconnect();
    await proxy?.close();
    await redis.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const positional = process.argv.slice(2).filter((arg) => !arg.startsWith("--"));
  const base = process.argv.find((arg) => arg.startsWith("--base="))?.slice("--base=".length);
  await runRedisCatchUpBench(Number(positional[0] ?? 1000), Number(positional[1] ?? 5), Number(positional[2] ?? 0), base);
}
