/*
 * ChunkChannel (the RESP connection for version data bytes) against a real redis-server: what it
 * writes is what ioredis reads back, and the other way round, with credentials, a database, errors
 * and a server that goes away.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { type AddressInfo, type Socket, createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, test } from "node:test";
import { Redis } from "ioredis";
import { Code } from "../../src/errors/index.js";
import { ChunkChannel, MIN_LINK_BYTES_PER_SECOND } from "../../src/redis/chunk-channel.js";
import { RedisConnection } from "../../src/redis/redis-connection.js";
import { parseRedisUrl } from "../../src/redis/redis-url.js";
import { killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import { startThrottleProxy } from "../support/throttle-proxy.js";

after(killAllRedisServers);

const MIB = 1024 * 1024;

describe("ChunkChannel", () => {
  test("a SET made of several segments is stored as their concatenation, with its TTL", async (t) => {
    const server = await startRedisServer(t);
    const channel = new ChunkChannel(parseRedisUrl(server.url), 2000);
    t.after(() => channel.close());
    const check = new Redis(server.url);
    t.after(() => check.disconnect());
    const parts = [randomBytes(3 * MIB + 17), randomBytes(0), randomBytes(5)];
    await channel.setChunk("k:é", parts, 60_000);
    assert.deepEqual(await check.getBuffer("k:é"), Buffer.concat(parts));
    const ttl = await check.pttl("k:é");
    assert.ok(ttl > 50_000 && ttl <= 60_000, `pttl ${ttl}`);
  });

  test("getInto hands over the value in order in pieces, and says its length; null without the key", async (t) => {
    const server = await startRedisServer(t);
    const channel = new ChunkChannel(parseRedisUrl(server.url), 2000);
    t.after(() => channel.close());
    const check = new Redis(server.url);
    t.after(() => check.disconnect());
    const values = [randomBytes(2 * MIB + 3), Buffer.alloc(0), randomBytes(1)];
    await Promise.all(values.map((value, i) => check.set(`v${i}`, value)));
    const received: Buffer[][] = values.map(() => []);
    const noBulk: string[] = [];
    // Pipelined: every reply goes to its own command's sink.
    const lengths = await Promise.all([
      ...values.map((_, i) => channel.getInto(`v${i}`, (piece) => received[i]?.push(Buffer.from(piece)), () => noBulk.push(`v${i}`))),
      channel.getInto("missing", () => assert.fail("no bytes for a missing key"), () => noBulk.push("missing")),
    ]);
    assert.deepEqual(lengths, [2 * MIB + 3, 0, 1, null]);
    assert.deepEqual(noBulk, ["missing"]);
    values.forEach((value, i) => assert.deepEqual(Buffer.concat(received[i] ?? []), value));
    assert.ok((received[0]?.length ?? 0) > 1, "a 2 MiB value arrives in several pieces");
    assert.deepEqual(await channel.getBuffer("v0"), values[0]);
    assert.equal(await channel.getBuffer("missing"), null);
  });

  test("a READONLY reply (a replica after a failover) fails that command and the next one connects again", async (t) => {
    const server = await startRedisServer(t);
    const channel = new ChunkChannel(parseRedisUrl(server.url), 2000);
    t.after(() => channel.close());
    const check = new Redis(server.url);
    t.after(() => check.disconnect());
    await channel.setChunk("before", [Buffer.from("x")], 60_000);
    const connections = async (): Promise<number> => Number(/total_connections_received:(\d+)/.exec(await check.info("stats"))?.[1]);
    const connectedBefore = await connections();
    // A replica of a port nobody listens on: it stays a read-only replica.
    await check.replicaof("127.0.0.1", "1");
    await assert.rejects(channel.setChunk("during", [Buffer.from("y")], 60_000), /^ReplyError: READONLY/);
    await check.replicaof("NO", "ONE");
    await channel.setChunk("after", [Buffer.from("z")], 60_000);
    assert.equal(await connections(), connectedBefore + 1, "one new connection after the READONLY reply");
    assert.deepEqual(await check.getBuffer("after"), Buffer.from("z"));
  });

  test("a password in the URL of a Redis without one is let pass, as ioredis does", async (t) => {
    const server = await startRedisServer(t);
    const url = parseRedisUrl(server.url.replace("redis://", "redis://:unneeded@"));
    const channel = new ChunkChannel(url, 2000);
    t.after(() => channel.close());
    const check = new Redis(server.url);
    t.after(() => check.disconnect());
    await channel.setChunk("k", [Buffer.from("v")], 60_000);
    assert.deepEqual(await check.getBuffer("k"), Buffer.from("v"));
    assert.deepEqual(await channel.getBuffer("k"), Buffer.from("v"));
  });

  test("an error reply fails that command only", async (t) => {
    const server = await startRedisServer(t);
    const channel = new ChunkChannel(parseRedisUrl(server.url), 2000);
    t.after(() => channel.close());
    const check = new Redis(server.url);
    t.after(() => check.disconnect());
    await check.rpush("list", "x");
    await check.set("fine", "ok");
    let noBulk = 0;
    await assert.rejects(channel.getInto("list", () => assert.fail("no bytes for an error"), () => noBulk++), /^ReplyError: WRONGTYPE /);
    assert.equal(noBulk, 1);
    const [wrong, fine] = await Promise.allSettled([channel.getBuffer("list"), channel.getBuffer("fine")]);
    assert.equal(wrong.status, "rejected");
    assert.equal((wrong as PromiseRejectedResult).reason.name, "ReplyError");
    assert.match(String((wrong as PromiseRejectedResult).reason.message), /^WRONGTYPE /);
    assert.deepEqual(fine, { status: "fulfilled", value: Buffer.from("ok") });
  });

  test("a sink that throws fails its own GET only; the connection goes on", async (t) => {
    const server = await startRedisServer(t);
    const channel = new ChunkChannel(parseRedisUrl(server.url), 2000);
    t.after(() => channel.close());
    const check = new Redis(server.url);
    t.after(() => check.disconnect());
    await check.set("big", randomBytes(MIB));
    await check.set("next", "after");
    const [thrown, next] = await Promise.allSettled([
      channel.getInto("big", () => {
        throw new Error("sink refused");
      }),
      channel.getBuffer("next"),
    ]);
    assert.equal(thrown.status, "rejected");
    // A failure of ours, not of Redis: INTERNAL, never mapped to "Redis ... is unreachable".
    assert.equal((thrown as PromiseRejectedResult).reason.code, Code.INTERNAL);
    assert.equal((thrown as PromiseRejectedResult).reason.message, "storing the data read from Redis failed: sink refused");
    assert.deepEqual(next, { status: "fulfilled", value: Buffer.from("after") });
  });

  test("authenticates (user and password) and selects the URL's database", async (t) => {
    const server = await startRedisServer(t);
    const admin = new Redis(server.url);
    await admin.call("ACL", "SETUSER", "reg", "on", ">s3cret", "~*", "+@all");
    await admin.call("ACL", "SETUSER", "default", "off");
    admin.disconnect();
    const url = `redis://reg:s3cret@127.0.0.1:${server.port}/3`;
    const channel = new ChunkChannel(parseRedisUrl(url), 2000);
    t.after(() => channel.close());
    await channel.setChunk("in-db-3", [Buffer.from("abc")], 60_000);
    const check = new Redis(url);
    t.after(() => check.disconnect());
    assert.equal(await check.get("in-db-3"), "abc");
    await check.select(0);
    assert.equal(await check.get("in-db-3"), null);

    const refused = new ChunkChannel(parseRedisUrl(`redis://reg:wrong@127.0.0.1:${server.port}`), 2000);
    t.after(() => refused.close());
    await assert.rejects(refused.getBuffer("in-db-3"), /WRONGPASS/);
  });

  test("a server that stops fails what waits; a server that hangs times out; both reconnect", async (t) => {
    const server = await startRedisServer(t);
    const channel = new ChunkChannel(parseRedisUrl(server.url), 500);
    t.after(() => channel.close());
    await channel.setChunk("a", [Buffer.from("1")], 60_000);
    server.pause();
    await assert.rejects(channel.getBuffer("a"), { message: "the chunk connection made no progress for 500 ms" });
    server.resume();
    assert.deepEqual(await channel.getBuffer("a"), Buffer.from("1"));
    await server.stop("SIGKILL");
    await assert.rejects(channel.getBuffer("a"), (error: Error) => error.name !== "ReplyError");
    await server.start();
    assert.equal(await channel.getBuffer("a"), null); // no persistence: a new, empty Redis
  });

  test("GETs queued behind others on a slow link wait while replies keep coming (the timeout is a lack of progress)", async (t) => {
    const server = await startRedisServer(t);
    const check = new Redis(server.url);
    t.after(() => check.disconnect());
    const values = Array.from({ length: 16 }, () => randomBytes(MIB / 2));
    await Promise.all(values.map((value, i) => check.set(`slow${i}`, value)));
    // 64 KiB every 20 ms: the 8 MiB of replies take at least 2.5 s, over twice the 1 s timeout, and
    // never stop for more than a tick. A timer started when a GET is queued fails the later ones.
    const proxy = await startThrottleProxy(server.port, 64 * 1024, 20);
    t.after(() => proxy.close());
    const channel = new ChunkChannel(parseRedisUrl(`redis://127.0.0.1:${proxy.port}`), 1000);
    t.after(() => channel.close());
    const replies = await Promise.all(values.map((_, i) => channel.getBuffer(`slow${i}`)));
    replies.forEach((reply, i) => assert.deepEqual(reply, values[i], `value ${i}`));
  });

  test("a SET the kernel took at once waits while its bytes cross a slow link; on a link that stops, it fails within the timeout plus its bytes' time at the minimum rate", async (t) => {
    const server = await startRedisServer(t);
    const check = new Redis(server.url);
    t.after(() => check.disconnect());
    // ~400 KiB/s both ways: 1 MiB takes ~2.5 s to reach Redis, five times the 500 ms timeout, while the
    // kernel's socket buffers take it at once (nothing left to write, no byte back until Redis has it all).
    const proxy = await startThrottleProxy(server.port, 20 * 1024, 50, { upstream: true });
    t.after(() => proxy.close());
    const channel = new ChunkChannel(parseRedisUrl(`redis://127.0.0.1:${proxy.port}`), 500);
    t.after(() => channel.close());
    const value = randomBytes(MIB);
    await channel.setChunk("slow-set", [value], 60_000);
    assert.deepEqual(await check.getBuffer("slow-set"), value);

    proxy.stop();
    const started = performance.now();
    const commandBytes = `*5\r\n$3\r\nSET\r\n$7\r\nstalled\r\n$${MIB}\r\n`.length + MIB + "\r\n$2\r\nPX\r\n$5\r\n60000\r\n".length;
    const allowedMs = 500 + Math.floor((commandBytes * 1000) / MIN_LINK_BYTES_PER_SECOND);
    await assert.rejects(channel.setChunk("stalled", [value], 60_000), (error: Error) => {
      // Either the kernel took every byte (the command's allowance), or it stopped taking them (the plain timeout).
      assert.ok(
        [
          "the chunk connection made no progress for 500 ms",
          `the chunk connection made no progress for ${allowedMs} ms (the timeout of 500 ms, plus ${allowedMs - 500} ms for the command's ${commandBytes} bytes to reach Redis at 256 KiB/s)`,
        ].includes(error.message),
        error.message,
      );
      return true;
    });
    const failedAfter = performance.now() - started;
    // The check runs every quarter of the timeout; the rest is a margin for a loaded machine.
    assert.ok(failedAfter <= allowedMs + 2000, `failed after ${Math.round(failedAfter)} ms`);
  });

  test("a chunk connection that stalls fails its commands with UNAVAILABLE but leaves the command connection up", async (t) => {
    const server = await startRedisServer(t);
    t.after(() => server.resume());
    const connection = new RedisConnection(parseRedisUrl(server.url), { commandTimeoutMs: 500 });
    t.after(() => connection.close());
    await connection.waitUntilHealthy(30_000);
    await connection.chunks.setChunk("a", [Buffer.from("1")], 60_000);
    const health: boolean[] = [];
    connection.on("health", (healthy) => health.push(healthy));
    server.pause();
    await assert.rejects(
      connection.call(() => connection.chunks.getBuffer("a")),
      (error: Error & { code?: number }) =>
        error.code === Code.UNAVAILABLE &&
        error.message === `Redis at 127.0.0.1:${server.port} is unreachable: the chunk connection made no progress for 500 ms`,
    );
    // The command connection was not dropped for it: still healthy, no health change.
    assert.equal(connection.healthy, true);
    assert.deepEqual(health, []);
    server.resume();
    assert.equal(await connection.commands.get("a"), "1");
    assert.deepEqual(await connection.call(() => connection.chunks.getBuffer("a")), Buffer.from("1"));
    assert.deepEqual(health, []);
  });

  test("a peer that takes every byte and never answers times out although new commands keep coming", async (t) => {
    // Not a Redis: a half-open path (the bytes go, no reply comes back), which a real server cannot play.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.resume();
    });
    silent.listen(0, "127.0.0.1");
    await once(silent, "listening");
    t.after(() => {
      for (const socket of sockets) socket.destroy();
      silent.close();
    });
    const { port } = silent.address() as AddressInfo;
    const channel = new ChunkChannel(parseRedisUrl(`redis://127.0.0.1:${port}`), 500);
    t.after(() => channel.close());
    const first = channel.getBuffer("a").then(
      () => "answered",
      (error: Error) => error.message,
    );
    // A GET every 100 ms for up to 10 s: each is written at once, and none may keep the connection alive.
    let issued = 1;
    const later: Promise<unknown>[] = [];
    let outcome: string | undefined;
    void first.then((result) => (outcome = result));
    while (outcome === undefined && issued < 100) {
      await sleep(100);
      later.push(channel.getBuffer("a").catch(() => undefined));
      issued += 1;
    }
    assert.equal(await first, "the chunk connection made no progress for 500 ms");
    assert.ok(issued < 100, `the first GET failed only after ${issued} more GETs stopped coming`);
    await Promise.all(later);
  });

  test("after close, commands fail at once", async (t) => {
    const server = await startRedisServer(t);
    const channel = new ChunkChannel(parseRedisUrl(server.url), 2000);
    channel.close();
    await assert.rejects(channel.getBuffer("a"), { message: "Connection is closed." });
  });
});
