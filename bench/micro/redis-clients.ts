/**
 * ioredis vs node-redis v5 on what the Redis mode does most, against a real redis-server on loopback
 * (started here): SET and GET of a 2 MiB buffer (a stored chunk of version data), a pipeline of 100
 * small commands (metadata), and pub/sub latency (a commit reaching another instance). Each client
 * runs the same loop; the median of its iterations is reported. Standalone:
 * `npm run build && npx node dist/bench/micro/redis-clients.js`.
 */
import { randomBytes } from "node:crypto";
import { pathToFileURL } from "node:url";
import { Redis } from "ioredis";
import { RESP_TYPES, createClient } from "redis";
import { startRedisServer } from "../../test/support/redis-server.js";

const CHUNK_BYTES = 2 * 1024 * 1024;
const PIPELINE_COMMANDS = 100;

/** What one client must do; every method is one measured iteration. */
interface ClientUnderTest {
  readonly name: string;
  setChunk(key: string, value: Buffer): Promise<void>;
  getChunk(key: string): Promise<Buffer>;
  pipeline(keys: readonly string[]): Promise<void>;
  /** Publishes once and resolves when the subscriber got it. */
  publishRoundTrip(): Promise<void>;
  close(): Promise<void>;
}

async function ioredisClient(url: string): Promise<ClientUnderTest> {
  const client = new Redis(url, { lazyConnect: true });
  const subscriber = new Redis(url, { lazyConnect: true });
  await Promise.all([client.connect(), subscriber.connect()]);
  let delivered: (() => void) | undefined;
  subscriber.on("messageBuffer", () => delivered?.());
  await subscriber.subscribe("bench");
  return {
    name: "ioredis",
    setChunk: async (key, value) => void (await client.set(key, value)),
    getChunk: async (key) => {
      const value = await client.getBuffer(key);
      if (value === null) throw new Error("missing");
      return value;
    },
    pipeline: async (keys) => {
      const pipeline = client.pipeline();
      for (const key of keys) pipeline.hget(key, "f");
      await pipeline.exec();
    },
    publishRoundTrip: () =>
      new Promise<void>((resolve, reject) => {
        delivered = resolve;
        client.publish("bench", "x").catch(reject);
      }),
    close: async () => {
      client.disconnect();
      subscriber.disconnect();
    },
  };
}

async function nodeRedisClient(url: string): Promise<ClientUnderTest> {
  const client = createClient({ url });
  const buffers = client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
  const subscriber = client.duplicate();
  await Promise.all([client.connect(), subscriber.connect()]);
  let delivered: (() => void) | undefined;
  await subscriber.subscribe("bench", () => delivered?.());
  return {
    name: "node-redis",
    setChunk: async (key, value) => void (await client.set(key, value)),
    getChunk: async (key) => {
      const value = await buffers.get(key);
      if (value === null) throw new Error("missing");
      return value;
    },
    pipeline: async (keys) => {
      const multi = client.multi();
      for (const key of keys) multi.hGet(key, "f");
      await multi.execAsPipeline();
    },
    publishRoundTrip: () =>
      new Promise<void>((resolve, reject) => {
        delivered = resolve;
        client.publish("bench", "x").catch(reject);
      }),
    close: async () => {
      client.destroy();
      subscriber.destroy();
    },
  };
}

async function medianMs(iterations: number, run: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < Math.min(20, iterations); i++) await run();
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const start = process.hrtime.bigint();
    await run();
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] ?? Number.NaN;
}

export async function runRedisClientsBench(iterations = 200): Promise<void> {
  const server = await startRedisServer();
  try {
    const chunk = randomBytes(CHUNK_BYTES);
    const keys = Array.from({ length: PIPELINE_COMMANDS }, (_, i) => `h${i}`);
    for (const make of [ioredisClient, nodeRedisClient, ioredisClient, nodeRedisClient]) {
      const client = await make(server.url);
      await client.setChunk("chunk", chunk);
      const set = await medianMs(iterations, () => client.setChunk("chunk", chunk));
      const get = await medianMs(iterations, () => client.getChunk("chunk"));
      const pipeline = await medianMs(iterations, () => client.pipeline(keys));
      const pubsub = await medianMs(iterations * 5, () => client.publishRoundTrip());
      const mbps = (ms: number): string => ((CHUNK_BYTES / 1e6 / ms) * 1e3).toFixed(0);
      console.log(
        JSON.stringify({
          client: client.name,
          set2MiBMs: set.toFixed(3),
          setMBps: mbps(set),
          get2MiBMs: get.toFixed(3),
          getMBps: mbps(get),
          pipeline100Ms: pipeline.toFixed(3),
          pubsubRoundTripMs: pubsub.toFixed(3),
        }),
      );
      await client.close();
    }
  } finally {
    await server.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  await runRedisClientsBench(Number(process.argv[2] ?? 200));
}
