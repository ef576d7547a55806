import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type ClientHttp2Session, connect } from "node:http2";
import { setTimeout as sleep } from "node:timers/promises";
import { type TestContext, describe, test } from "node:test";
import { frameHeaderLength } from "../../src/data/index.js";
import { openStalledReader, readToEnd } from "../support/stalled-reader.js";
import { startTestServer } from "../support/test-server.js";

const MiB = 1024 * 1024;
const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

function pattern(size: number, seed: number): Buffer {
  const data = Buffer.allocUnsafe(size);
  for (let i = 0; i + 4 <= size; i += 4) data.writeUInt32LE((i * 2654435761 + seed) >>> 0, i);
  return data;
}

type Figures = { streamed_read_bytes: number; streamed_reads_waiting: number };

async function figures(client: { status(names: string[]): Promise<{ statuses: Record<string, string> }> }): Promise<Figures> {
  const { statuses } = await client.status(["streamed_read_bytes", "streamed_reads_waiting"]);
  return { streamed_read_bytes: Number(statuses.streamed_read_bytes), streamed_reads_waiting: Number(statuses.streamed_reads_waiting) };
}

interface ArchivedVersionServer {
  readonly client: Awaited<ReturnType<typeof startTestServer>>["client"];
  readonly data: Buffer;
  /** One reply chunk (1 MiB of data) with its framing: the unit the bound counts. */
  readonly frameBytes: number;
  readonly session: ClientHttp2Session;
}

/**
 * A server whose 8 MiB budget cannot hold the archived version "big" version 1 (larger than a quarter
 * of it: streamed from disk), 1 MiB chunks, a bound of `boundFrames` chunks; a bare HTTP/2 session to it.
 */
async function serverWithLargeArchivedVersion(t: TestContext, boundFrames: number, versionMiB: number, sendIdleTimeoutMs = 0): Promise<ArchivedVersionServer> {
  const frameBytes = frameHeaderLength(MiB) + MiB;
  const server = await startTestServer({ cacheMaxBytes: 8 * MiB, sentChunkSize: MiB, streamedReadsMaxBytes: boundFrames * frameBytes, sendIdleTimeoutMs });
  t.after(() => server.close());
  const { client } = server;
  await client.createModel("big");
  const data = pattern(versionMiB * MiB, versionMiB);
  await client.publish("big", data, { archived: true, data_hash: sha256(data) });
  const session = connect(`http://127.0.0.1:${server.server.port}`);
  session.on("error", () => undefined);
  t.after(() => session.destroy());
  return { client, data, frameBytes, session };
}

/** Polls Status until `count` streams wait for room (at most 30 s); the figures then. */
async function untilWaiting(client: ArchivedVersionServer["client"], count: number): Promise<Figures> {
  let seen = await figures(client);
  for (let waited = 0; seen.streamed_reads_waiting < count && waited < 30_000; waited += 20) {
    await sleep(20);
    seen = await figures(client);
  }
  return seen;
}

/** Polls Status until no room is held (at most 30 s); the figures then. */
async function untilReleased(client: ArchivedVersionServer["client"]): Promise<Figures> {
  let seen = await figures(client);
  for (let waited = 0; seen.streamed_read_bytes !== 0 && waited < 30_000; waited += 20) {
    await sleep(20);
    seen = await figures(client);
  }
  return seen;
}

describe("reads the cache does not hold are bounded together (STREAMED_READS_MAX_SIZE)", () => {
  test("five readers that stop reading a version streamed from disk hold four chunks between them, then all finish byte-exact", async (t) => {
    const { client, data, frameBytes, session } = await serverWithLargeArchivedVersion(t, 4, 16);
    const readers = Array.from({ length: 5 }, () => openStalledReader(session, "big", 1));
    // Four readers take one chunk each (a stream's share is a quarter of the bound) and wait for
    // their next; the fifth finds the bound full.
    assert.deepEqual(await untilWaiting(client, 5), { streamed_read_bytes: 4 * frameBytes, streamed_reads_waiting: 5 });

    const outcomes = await Promise.all(readers.map(readToEnd));
    for (const [index, outcome] of outcomes.entries()) {
      assert.equal(outcome.grpcStatus, "0", `reader ${index} ends with OK`);
      assert.equal(outcome.data.length, data.length, `reader ${index} got every byte`);
      assert.equal(sha256(outcome.data), sha256(data), `reader ${index} got the version's bytes`);
    }
    assert.deepEqual(await figures(client), { streamed_read_bytes: 0, streamed_reads_waiting: 0 });
  });

  for (const how of ["reset by SEND_IDLE_TIMEOUT", "cancelled by its client"] as const) {
    test(`a reader waiting for room that is ${how} gives all its room back at once; the next read finishes`, async (t) => {
      const { client, data, frameBytes, session } = await serverWithLargeArchivedVersion(t, 4, 16, how === "reset by SEND_IDLE_TIMEOUT" ? 1000 : 0);
      const stalled = openStalledReader(session, "big", 1);
      stalled.on("error", () => undefined);
      // It holds its chunk (its share of the bound) and waits for room for the next: the writes of
      // a call that is gone never complete, so only the call's end can give the room back.
      assert.deepEqual(await untilWaiting(client, 1), { streamed_read_bytes: frameBytes, streamed_reads_waiting: 1 });
      const closed = new Promise<void>((resolve) => stalled.once("close", () => resolve()));
      if (how === "cancelled by its client") {
        stalled.close(8); // RST_STREAM CANCEL
      }
      await closed;
      assert.deepEqual(await untilReleased(client), { streamed_read_bytes: 0, streamed_reads_waiting: 0 });
      assert.equal(sha256(await client.retrieveData("big", 1)), sha256(data));
    });
  }

  test("a reader that goes away while it waits gives its room back: the others finish", async (t) => {
    const { client, data, frameBytes, session } = await serverWithLargeArchivedVersion(t, 2, 8);
    const holder = openStalledReader(session, "big", 1);
    const leaving = openStalledReader(session, "big", 1);
    const staying = openStalledReader(session, "big", 1);
    assert.deepEqual(await untilWaiting(client, 3), { streamed_read_bytes: 2 * frameBytes, streamed_reads_waiting: 3 });
    leaving.close();
    const [first, last] = await Promise.all([readToEnd(holder), readToEnd(staying)]);
    assert.deepEqual([first.grpcStatus, sha256(first.data)], ["0", sha256(data)]);
    assert.deepEqual([last.grpcStatus, sha256(last.data)], ["0", sha256(data)]);
    assert.deepEqual(await untilReleased(client), { streamed_read_bytes: 0, streamed_reads_waiting: 0 });
  });
});
