import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, test } from "node:test";
import { type ServiceError, status } from "@grpc/grpc-js";
import { RegistryClient } from "../support/registry-client.js";
import { type ServerProcess, killAllServers, spawnServer, spawnServerOnTempArchive } from "../support/server-process.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const P = "COGMENT_MODEL_REGISTRY_";
const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

after(killAllServers);

function pattern(size: number, seed: number): Buffer {
  const data = Buffer.allocUnsafe(size);
  for (let i = 0; i + 4 <= size; i += 4) data.writeUInt32LE((i * 2654435761 + seed) >>> 0, i);
  return data;
}

function clientOf(t: { after(fn: () => void): void }, server: ServerProcess): RegistryClient {
  const client = new RegistryClient(`127.0.0.1:${server.port}`);
  t.after(() => client.close());
  return client;
}

async function statuses(client: RegistryClient, names: string[]): Promise<Record<string, string>> {
  return (await client.status(names)).statuses;
}

/** Polls Status until `name` satisfies `ready` (at most 30 s). */
async function waitForStatus(client: RegistryClient, name: string, ready: (value: number) => boolean): Promise<number> {
  let value = Number.NaN;
  for (let waited = 0; waited < 30_000; waited += 20) {
    value = Number((await statuses(client, [name]))[name]);
    if (ready(value)) {
      return value;
    }
    await sleep(20);
  }
  assert.fail(`Status ${name} stayed at ${value}`);
}

async function stopProcess(server: ServerProcess): Promise<void> {
  server.child.kill("SIGTERM");
  assert.equal(await server.exited, 0);
}

describe("archived uploads stream to disk whatever the budget", () => {
  test("4 MiB and 64 MiB archived versions with a 1 MiB budget: stored, read back byte-exact, also after a restart", { timeout: 120_000 }, async (t) => {
    const env = { [`${P}VERSION_CACHE_MAX_SIZE`]: String(MiB) };
    const first = await spawnServerOnTempArchive(t, env);
    const client = clientOf(t, first);
    await client.createModel("small-budget");
    const four = pattern(4 * MiB, 1);
    const sixtyFour = pattern(64 * MiB, 2);

    const v1 = await client.publish("small-budget", four, { archived: true, data_hash: sha256(four) });
    assert.deepEqual(
      { number: v1.version_number, size: v1.data_size, hash: v1.data_hash, archived: v1.archived },
      { number: 1, size: String(4 * MiB), hash: sha256(four), archived: true },
    );

    // While a large archived upload is open, it holds one 4 MiB batch: the 1 MiB budget cannot take
    // it, so it is held beside the budget (and shown), not refused.
    const { call, reply } = client.openCreateVersion();
    call.write({
      header: { version_info: { model_id: "small-budget", archived: true, data_size: String(sixtyFour.length), data_hash: sha256(sixtyFour) } },
    });
    call.write({ body: { data_chunk: sixtyFour.subarray(0, MiB) } });
    await waitForStatus(client, "uploads_in_flight", (n) => n === 1);
    assert.deepEqual(await statuses(client, ["upload_bytes_outside_budget", "cache_reserved_bytes", "cache_max_bytes"]), {
      upload_bytes_outside_budget: String(4 * MiB),
      cache_reserved_bytes: "0",
      cache_max_bytes: String(MiB),
    });
    for (let offset = MiB; offset < sixtyFour.length; offset += MiB) {
      if (!call.write({ body: { data_chunk: sixtyFour.subarray(offset, offset + MiB) } })) {
        await new Promise((resolve) => call.once("drain", resolve));
      }
    }
    call.end();
    const v2 = (await reply).version_info;
    assert.deepEqual(
      { number: v2.version_number, size: v2.data_size, hash: v2.data_hash },
      { number: 2, size: String(64 * MiB), hash: sha256(sixtyFour) },
    );
    assert.deepEqual(await statuses(client, ["upload_bytes_outside_budget", "uploads_in_flight"]), {
      upload_bytes_outside_budget: "0",
      uploads_in_flight: "0",
    });
    assert.ok((await client.retrieveData("small-budget", 1)).equals(four), "4 MiB version read back byte-exact");
    assert.ok((await client.retrieveData("small-budget", 2)).equals(sixtyFour), "64 MiB version read back byte-exact");
    assert.ok(Number((await statuses(client, ["cache_used_bytes"])).cache_used_bytes) <= MiB);

    await stopProcess(first);
    const second = await spawnServer({ ...env, [`${P}ARCHIVE_DIR`]: first.archiveDir });
    const again = clientOf(t, second);
    const infos = await again.retrieveVersionInfos({ model_id: "small-budget" });
    assert.deepEqual(
      infos.version_infos.map((v) => [v.version_number, v.data_size, v.data_hash]),
      [
        [1, String(4 * MiB), sha256(four)],
        [2, String(64 * MiB), sha256(sixtyFour)],
      ],
    );
    assert.ok((await again.retrieveData("small-budget", 1)).equals(four), "4 MiB version byte-exact after restart");
    assert.ok((await again.retrieveData("small-budget", 2)).equals(sixtyFour), "64 MiB version byte-exact after restart");
  });

  test("an archived version that fits a share of the budget goes to disk when the budget is full of uploads in flight", { timeout: 120_000 }, async (t) => {
    const server = await spawnServerOnTempArchive(t, { [`${P}VERSION_CACHE_MAX_SIZE`]: String(8 * MiB) });
    const client = clientOf(t, server);
    await client.createModel("busy");
    // A transient upload in flight holds 7 MiB of the 8 MiB budget.
    const { call: holder, reply: held } = client.openCreateVersion();
    held.catch(() => {});
    holder.write({ header: { version_info: { model_id: "busy", data_size: String(7 * MiB) } } });
    await waitForStatus(client, "cache_reserved_bytes", (n) => n >= 7 * MiB);
    const data = pattern(1.5 * MiB, 3);
    await assert.rejects(client.publish("busy", data), { code: status.RESOURCE_EXHAUSTED });
    const archived = await client.publish("busy", data, { archived: true, data_hash: sha256(data) });
    assert.equal(archived.version_number, 1);
    assert.ok((await client.retrieveData("busy", 1)).equals(data));
    holder.cancel();
  });
});

describe("no upload holds the budget hostage", () => {
  test("an upload that goes silent fails with DEADLINE_EXCEEDED after the idle time and releases its reservation", { timeout: 120_000 }, async (t) => {
    const server = await spawnServerOnTempArchive(t, {
      [`${P}VERSION_CACHE_MAX_SIZE`]: String(64 * MiB),
      [`${P}UPLOAD_IDLE_TIMEOUT`]: "1s",
      [`${P}UPLOAD_MIN_RATE`]: "0",
    });
    const client = clientOf(t, server);
    await client.createModel("hostage");
    const { call, reply } = client.openCreateVersion();
    const outcome = reply.then(
      () => assert.fail("the silent upload succeeded"),
      (error: ServiceError) => error,
    );
    call.write({ header: { version_info: { model_id: "hostage", data_size: String(48 * MiB) } } });
    call.write({ body: { data_chunk: Buffer.alloc(KiB, 1) } });
    await waitForStatus(client, "cache_reserved_bytes", (n) => n >= 48 * MiB);
    const other = pattern(32 * MiB, 4);
    await assert.rejects(client.publish("hostage", other), { code: status.RESOURCE_EXHAUSTED });

    const error = await outcome;
    assert.equal(error.code, status.DEADLINE_EXCEEDED);
    assert.match(
      error.details,
      /^CreateVersion received nothing from the client for 1(\.\d)?s \(COGMENT_MODEL_REGISTRY_UPLOAD_IDLE_TIMEOUT = 1s\) after 1024 bytes of data; the upload was abandoned and its memory reservation released$/,
    );
    assert.deepEqual(await statuses(client, ["cache_reserved_bytes", "uploads_in_flight"]), {
      cache_reserved_bytes: "0",
      uploads_in_flight: "0",
    });
    const info = await client.publish("hostage", other);
    assert.equal(info.version_number, 1);
    assert.ok((await client.retrieveData("hostage", 1)).equals(other));
  });

  test("an upload below the minimum rate after its first period fails with DEADLINE_EXCEEDED and releases its reservation", { timeout: 120_000 }, async (t) => {
    const server = await spawnServerOnTempArchive(t, {
      [`${P}VERSION_CACHE_MAX_SIZE`]: String(64 * MiB),
      [`${P}UPLOAD_MIN_RATE`]: "65536",
      [`${P}UPLOAD_MIN_RATE_PERIOD`]: "1s",
    });
    const client = clientOf(t, server);
    await client.createModel("trickle");
    const { call, reply } = client.openCreateVersion();
    let settled = false;
    const outcome = reply.then(
      () => assert.fail("the trickling upload succeeded"),
      (error: ServiceError) => error,
    );
    void outcome.finally(() => (settled = true));
    call.write({ header: { version_info: { model_id: "trickle", data_size: String(48 * MiB) } } });
    await waitForStatus(client, "cache_reserved_bytes", (n) => n >= 48 * MiB);
    // 100 bytes every 50 ms: never idle, far below 64 KiB/s.
    while (!settled) {
      call.write({ body: { data_chunk: Buffer.alloc(100, 2) } });
      await sleep(50);
    }
    const error = await outcome;
    assert.equal(error.code, status.DEADLINE_EXCEEDED);
    const match =
      /^CreateVersion too slow: the client sent (\d+) bytes in 1s of waiting \((\d+) bytes\/s\), below COGMENT_MODEL_REGISTRY_UPLOAD_MIN_RATE = 65536 bytes\/s, after (\d+) bytes of data; the upload was abandoned and its memory reservation released$/.exec(
        error.details,
      );
    assert.ok(match, `message: ${error.details}`);
    const [, periodBytes, rate, total] = match.map(Number);
    // The period counts the request's bytes as they arrive: 109 per message (the 5-byte gRPC prefix,
    // body and data_chunk tags and lengths, 100 bytes of data); the total counts the data.
    const MESSAGE_BYTES = 109;
    assert.ok(periodBytes !== undefined && periodBytes < 65536 && periodBytes % MESSAGE_BYTES === 0, `bytes in the period: ${periodBytes}`);
    assert.equal(rate, periodBytes);
    assert.ok(total !== undefined && total >= (periodBytes / MESSAGE_BYTES) * 100 && total % 100 === 0);
    assert.deepEqual(await statuses(client, ["cache_reserved_bytes", "uploads_in_flight"]), {
      cache_reserved_bytes: "0",
      uploads_in_flight: "0",
    });
    // A client at full speed is not affected.
    const data = pattern(32 * MiB, 5);
    const info = await client.publish("trickle", data);
    assert.equal(info.version_number, 1);
    assert.ok((await client.retrieveData("trickle", 1)).equals(data));
  });
});
