import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { open, readFile, truncate } from "node:fs/promises";
import path from "node:path";
import { describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { createLogger } from "../../src/logger.js";
import type { RegistryClient } from "../support/registry-client.js";
import { makeArchiveDir, startTestServer } from "../support/test-server.js";

const MiB = 1024 * 1024;
const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

type LogLine = Record<string, unknown>;

/** A logger that keeps its JSON lines for the test to read. */
function collectingLogger(): { log: ReturnType<typeof createLogger>; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = createLogger("info", {
    write(line: string) {
      lines.push(JSON.parse(line) as LogLine);
    },
  });
  return { log, lines };
}

function pattern(size: number, seed: number): Buffer {
  const data = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i += 4) data.writeUInt32LE((i * 2654435761 + seed) >>> 0, i);
  return data;
}

/** Everything a RetrieveVersionData call delivered: the data chunks and how the stream ended. */
function retrieveOutcome(client: RegistryClient, model_id: string, version_number: number): Promise<{ data: Buffer; error: grpc.ServiceError | undefined }> {
  return new Promise((resolve) => {
    const call = (client.raw.RetrieveVersionData as (req: object) => grpc.ClientReadableStream<{ data_chunk: Buffer }>).call(client.raw, {
      model_id,
      version_number,
    });
    const chunks: Buffer[] = [];
    call.on("data", (message) => chunks.push(message.data_chunk));
    call.on("error", (error: grpc.ServiceError) => resolve({ data: Buffer.concat(chunks), error }));
    call.on("end", () => resolve({ data: Buffer.concat(chunks), error: undefined }));
  });
}

/** Flips one bit of the file at `offset`, keeping its size. */
async function flipBit(file: string, offset: number): Promise<void> {
  const handle = await open(file, "r+");
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, offset);
    byte[0] = (byte[0] as number) ^ 0x10;
    await handle.write(byte, 0, 1, offset);
  } finally {
    await handle.close();
  }
}

function corruptionLines(lines: readonly LogLine[]): LogLine[] {
  return lines.filter((line) => line.msg === "archived version data is corrupted");
}

describe("archived data corrupted on disk is never served with OK", () => {
  test("streamed from disk: every byte as stored, then DATA_LOSS, and an error line naming the file", async (t) => {
    const { log, lines } = collectingLogger();
    // 16 MiB budget: a version over 4 MiB is written to and streamed from disk, never cached.
    const server = await startTestServer({ cacheMaxBytes: 16 * MiB, sentChunkSize: MiB }, {}, log);
    t.after(() => server.close());
    const { client } = server;
    await client.createModel("big");
    const data = pattern(10 * MiB + 124, 7);
    await client.publish("big", data, { archived: true, data_hash: sha256(data) });
    const file = path.join(server.archiveDir, "big", "big-v000001.data");

    const intact = await retrieveOutcome(client, "big", 1);
    assert.equal(intact.error, undefined);
    assert.ok(intact.data.equals(data));
    assert.deepEqual(corruptionLines(lines), []);

    await flipBit(file, 6 * MiB + 5);
    const stored = await readFile(file);
    assert.equal(stored.length, data.length);
    const flipped = await retrieveOutcome(client, "big", 1);
    assert.equal(flipped.error?.code, grpc.status.DATA_LOSS);
    assert.equal(
      flipped.error.details,
      `version 1 of model "big" is corrupted on disk: its data's SHA-256 is "${sha256(stored)}", its info says "${sha256(data)}"`,
    );
    assert.ok(flipped.data.equals(stored), "the client received every byte as stored before the status");
    const [line, ...more] = corruptionLines(lines);
    assert.deepEqual(more, []);
    assert.equal(line?.level, 50);
    assert.equal(line?.path, file);
    assert.equal(line?.modelId, "big");
    assert.equal(line?.versionNumber, 1);

    // A size that differs is DATA_LOSS before the first byte.
    await truncate(file, data.length - 1);
    const truncated = await retrieveOutcome(client, "big", 1);
    assert.equal(truncated.error?.code, grpc.status.DATA_LOSS);
    assert.equal(truncated.error.details, `version 1 of model "big" is corrupted on disk: ${data.length - 1} bytes of data, its info says ${data.length}`);
    assert.equal(truncated.data.length, 0);
    assert.equal(corruptionLines(lines).length, 2);
    assert.equal(corruptionLines(lines)[1]?.path, file);

    // The server keeps serving.
    const ok = await client.publish("big", Buffer.from("fine"));
    assert.equal((await client.retrieveData("big", ok.version_number)).toString(), "fine");
  });

  test("loaded into the cache: every byte as stored, then DATA_LOSS, an error line naming the file, nothing cached, and again at the next read", async (t) => {
    const archiveDir = await makeArchiveDir();
    const first = await startTestServer({ archiveDir });
    t.after(() => first.close());
    const data = pattern(MiB + 20, 9);
    await first.client.createModel("small");
    await first.client.publish("small", data, { archived: true });
    await first.stop();

    const file = path.join(archiveDir, "small", "small-v000001.data");
    await flipBit(file, 1000);
    const stored = await readFile(file);
    const { log, lines } = collectingLogger();
    // Chunks of 64 KiB: the version is sent as it is read, so the bytes reach the client in many messages.
    const server = await startTestServer({ archiveDir, sentChunkSize: 64 * 1024 }, {}, log);
    t.after(() => server.close());
    const { client } = server;
    const expected = `version 1 of model "small" is corrupted on disk: its data's SHA-256 is "${sha256(stored)}", its info says "${sha256(data)}"`;
    for (let attempt = 0; attempt < 2; attempt++) {
      const outcome = await retrieveOutcome(client, "small", 1);
      assert.equal(outcome.error?.code, grpc.status.DATA_LOSS);
      assert.equal(outcome.error.details, expected);
      assert.ok(outcome.data.equals(stored), "the client received every byte as stored before the status");
      assert.deepEqual((await client.status(["cached_versions", "cache_used_bytes"])).statuses, {
        cached_versions: "0",
        cache_used_bytes: "0",
      });
    }
    const found = corruptionLines(lines);
    assert.equal(found.length, 2, "one line per read");
    for (const line of found) {
      assert.equal(line.level, 50);
      assert.equal(line.path, file);
      assert.equal(line.modelId, "small");
      assert.equal(line.versionNumber, 1);
    }

    // Once the file is right again, the next read is OK and the version is cached.
    await flipBit(file, 1000);
    const repaired = await retrieveOutcome(client, "small", 1);
    assert.equal(repaired.error, undefined);
    assert.ok(repaired.data.equals(data));
    assert.equal((await client.status(["cached_versions"])).statuses.cached_versions, "1");
  });
});
