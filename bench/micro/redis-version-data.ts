/**
 * What storing and reading through one 16 MiB version costs in Redis mode, in isolation: CPU time of
 * this process (the instance's side: client, copies, GC, hashing) and of redis-server, per version,
 * for ioredis (as before 2026-12-04) against ChunkChannel, and for Redis with AOF `appendfsync
 * always`, `everysec` and no AOF. Store: 8 SET of 2 MiB, 2 in flight (VersionDataWriter's shape);
 * read: 8 GET into one preallocated buffer, hashed (the read-through's shape); and the wall time of a
 * store (AOF always waits for an fsync per write). Standalone:
 * `npm run build && npx node dist/bench/micro/redis-version-data.js [versions]`.
 */
import { createHash, randomBytes } from "node:crypto";
import { pathToFileURL } from "node:url";
import { Redis } from "ioredis";
import { ChunkChannel } from "../../src/redis/chunk-channel.js";
import { parseRedisUrl } from "../../src/redis/redis-url.js";
import { startRedisServer } from "../../test/support/redis-server.js";
import { readCpuSeconds } from "../support/proc-stats.js";

const MIB = 1024 * 1024;
const CHUNK_BYTES = 2 * MIB;
const CHUNKS = 8;
const TTL_MS = 600_000;

interface VersionDataClient {
  readonly name: string;
  set(key: string, chunk: Buffer): Promise<void>;
  /** Reads a version's chunks into `target`, hashing as they come. */
  readInto(keys: readonly string[], target: Buffer): Promise<string>;
  close(): void;
}

function ioredisClient(url: string): VersionDataClient {
  const client = new Redis(url);
  return {
    name: "ioredis",
    set: async (key, chunk) => void (await client.set(key, chunk, "PX", TTL_MS)),
    readInto: async (keys, target) => {
      const hash = createHash("sha256");
      let position = 0;
      let next = client.getBuffer(keys[0] ?? "");
      for (let i = 0; i < keys.length; i++) {
        const chunk = await next;
        if (i + 1 < keys.length) next = client.getBuffer(keys[i + 1] ?? "");
        if (chunk === null) throw new Error("missing");
        target.set(chunk, position);
        position += chunk.byteLength;
        hash.update(chunk);
      }
      return hash.digest("base64");
    },
    close: () => client.disconnect(),
  };
}

function channelClient(url: string): VersionDataClient {
  const channel = new ChunkChannel(parseRedisUrl(url), 5000);
  return {
    name: "chunk-channel",
    set: (key, chunk) => channel.setChunk(key, [chunk], TTL_MS),
    readInto: async (keys, target) => {
      const hash = createHash("sha256");
      let position = 0;
      const sink = (piece: Uint8Array): void => {
        target.set(piece, position);
        position += piece.byteLength;
        hash.update(piece);
      };
      const replies = await Promise.all(keys.map((key) => channel.getInto(key, sink)));
      if (replies.includes(null)) throw new Error("missing");
      return hash.digest("base64");
    },
    close: () => channel.close(),
  };
}

async function storeVersion(client: VersionDataClient, version: number, chunks: readonly Buffer[]): Promise<string[]> {
  const keys = chunks.map((_, i) => `v${version}:${i}`);
  const inFlight: Promise<void>[] = [];
  for (const [i, key] of keys.entries()) {
    // A fresh copy per chunk, as the writer's chunk buffer was before reuse: what the upload hands over.
    inFlight.push(client.set(key, chunks[i] as Buffer));
    if (inFlight.length >= 2) await inFlight.shift();
  }
  await Promise.all(inFlight);
  return keys;
}

export async function runRedisVersionDataBench(versions = 20): Promise<void> {
  const chunks = Array.from({ length: CHUNKS }, () => randomBytes(CHUNK_BYTES));
  const expected = createHash("sha256").update(Buffer.concat(chunks)).digest("base64");
  const target = Buffer.alloc(CHUNKS * CHUNK_BYTES);
  const persistence: Record<string, { appendOnly: boolean; extraArgs: string[] }> = {
    always: { appendOnly: true, extraArgs: [] },
    everysec: { appendOnly: true, extraArgs: ["--appendfsync", "everysec"] },
    off: { appendOnly: false, extraArgs: [] },
  };
  for (const round of [0, 1, 2]) {
    for (const [aof, options] of Object.entries(persistence)) {
      for (const make of [ioredisClient, channelClient]) {
        const server = await startRedisServer(undefined, options);
        const client = make(server.url);
        try {
          const pid = server.pid() as number;
          await storeVersion(client, -1, chunks); // connect, warm up
          const cpu = (): [number, number] => {
            const usage = process.cpuUsage();
            return [(usage.user + usage.system) / 1e6, readCpuSeconds(pid)];
          };
          const [c0, r0] = cpu();
          const start = performance.now();
          const stored: string[][] = [];
          for (let v = 0; v < versions; v++) stored.push(await storeVersion(client, v, chunks));
          const storeWall = (performance.now() - start) / 1e3;
          const [c1, r1] = cpu();
          for (const keys of stored) {
            if ((await client.readInto(keys, target)) !== expected) throw new Error("hash mismatch");
          }
          const [c2, r2] = cpu();
          const ms = (seconds: number): string => ((seconds / versions) * 1e3).toFixed(1);
          console.log(
            JSON.stringify({
              round,
              aof,
              client: client.name,
              storeClientMs: ms(c1 - c0),
              storeRedisMs: ms(r1 - r0),
              storeWallMs: ms(storeWall),
              readClientMs: ms(c2 - c1),
              readRedisMs: ms(r2 - r1),
            }),
          );
        } finally {
          client.close();
          await server.close();
        }
      }
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  await runRedisVersionDataBench(Number(process.argv[2] ?? 20));
}
