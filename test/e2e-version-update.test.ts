import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { type TestServer, startTestServer } from "./support/test-server.js";
import type { WireVersionInfo } from "./support/registry-client.js";

/** Collects VersionUpdate messages and lets a test wait for the n-th one. */
function collect(stream: grpc.ClientReadableStream<{ version_info: WireVersionInfo }>) {
  const received: WireVersionInfo[] = [];
  const waiters: Array<() => void> = [];
  let ended = false;
  let error: grpc.ServiceError | undefined;
  stream.on("data", (message) => {
    received.push(message.version_info);
    waiters.splice(0).forEach((wake) => wake());
  });
  stream.on("end", () => {
    ended = true;
    waiters.splice(0).forEach((wake) => wake());
  });
  stream.on("error", (e: grpc.ServiceError) => {
    error = e;
    waiters.splice(0).forEach((wake) => wake());
  });
  const until = async (predicate: () => boolean, timeoutMs = 5000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out; received ${received.map((v) => v.version_number)}`);
      await Promise.race([new Promise<void>((wake) => waiters.push(wake)), sleep(50)]);
    }
  };
  return {
    received,
    numbers: () => received.map((v) => v.version_number),
    get ended() {
      return ended;
    },
    get error() {
      return error;
    },
    until,
  };
}

describe("VersionUpdate, Version, Status and health", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(() => t.close());

  test("sends the current latest at once, then every new version in order", async () => {
    await t.client.createModel("vu");
    await t.client.publish("vu", Buffer.from("one"));
    const first = await t.client.publish("vu", Buffer.from("two"));
    const stream = t.client.versionUpdate("vu");
    const updates = collect(stream);
    await updates.until(() => updates.received.length >= 1);
    assert.deepEqual(updates.received[0], first);
    for (let i = 3; i <= 6; i++) {
      await t.client.publish("vu", Buffer.from(`v${i}`), { archived: i === 5 });
    }
    await updates.until(() => updates.numbers().at(-1) === 6);
    const numbers = updates.numbers();
    assert.deepEqual(numbers, [...numbers].sort((a, b) => a - b), "increasing order");
    assert.equal(new Set(numbers).size, numbers.length, "no duplicates");
    assert.deepEqual(numbers, [2, 3, 4, 5, 6]);
    stream.cancel();
  });

  test("a model without versions is not an error: the stream waits for the first", async () => {
    await t.client.createModel("vu-empty");
    const updates = collect(t.client.versionUpdate("vu-empty"));
    await sleep(100);
    assert.deepEqual(updates.received, []);
    assert.equal(updates.error, undefined);
    await t.client.publish("vu-empty", Buffer.from("first"));
    await updates.until(() => updates.received.length === 1);
    assert.deepEqual(updates.numbers(), [1]);
  });

  test("unknown model is NOT_FOUND", async () => {
    const updates = collect(t.client.versionUpdate("vu-unknown"));
    await updates.until(() => updates.error !== undefined);
    assert.equal(updates.error?.code, grpc.status.NOT_FOUND);
    assert.equal(updates.error?.details, 'model "vu-unknown" not found');
  });

  test("deleting the model ends the stream cleanly", async () => {
    await t.client.createModel("vu-delete");
    await t.client.publish("vu-delete", Buffer.from("x"));
    const updates = collect(t.client.versionUpdate("vu-delete"));
    await updates.until(() => updates.received.length === 1);
    await t.client.deleteModel("vu-delete");
    await updates.until(() => updates.ended || updates.error !== undefined);
    assert.equal(updates.error, undefined);
    assert.equal(updates.ended, true);
  });

  test("cancellation releases the subscriber", async () => {
    await t.client.createModel("vu-cancel");
    const subscribers = async (): Promise<string | undefined> => (await t.client.status(["subscribers"])).statuses.subscribers;
    const baseline = Number(await subscribers());
    const stream = t.client.versionUpdate("vu-cancel");
    stream.on("error", () => {});
    const deadline = Date.now() + 5000;
    while (Number(await subscribers()) !== baseline + 1 && Date.now() < deadline) await sleep(10);
    assert.equal(Number(await subscribers()), baseline + 1);
    stream.cancel();
    while (Number(await subscribers()) !== baseline && Date.now() < deadline) await sleep(10);
    assert.equal(Number(await subscribers()), baseline);
  });

  test("Version names the service and its version", async () => {
    const reply = await t.client.version();
    const { packageInfo } = await import("../src/package-info.js");
    assert.deepEqual(reply.versions[0], { name: "model_registry", version: packageInfo.version });
  });

  test("Status: named keys, '*' for all, unknown names omitted", async () => {
    const some = await t.client.status(["overall_load", "models", "no_such_key"]);
    assert.deepEqual(Object.keys(some.statuses).sort(), ["models", "overall_load"]);
    assert.match(some.statuses.overall_load ?? "", /^[01]\.\d{3}$/);
    const all = await t.client.status(["*"]);
    for (const key of ["overall_load", "models", "subscribers", "cache_used_bytes", "cached_versions", "cache_max_bytes", "worker_threads"]) {
      assert.ok(key in all.statuses, key);
    }
    const none = await t.client.status([]);
    assert.deepEqual(none.statuses, {});
  });

  test("grpc.health.v1 reports SERVING", async () => {
    const { loadSync } = await import("@grpc/proto-loader");
    const { protoPath } = await import("grpc-health-check");
    const pkg = grpc.loadPackageDefinition(loadSync(protoPath, { keepCase: true, enums: String })) as unknown as {
      grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
    };
    const health = new pkg.grpc.health.v1.Health(t.address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      Check(req: object, cb: (e: grpc.ServiceError | null, r?: { status: string }) => void): void;
    };
    try {
      for (const service of ["", "cogmentAPI.ModelRegistrySP"]) {
        const reply = await new Promise<{ status: string } | undefined>((resolve, reject) =>
          health.Check({ service }, (e, r) => (e ? reject(e) : resolve(r))),
        );
        assert.equal(reply?.status, "SERVING");
      }
    } finally {
      health.close();
    }
  });

  test("server stop ends open VersionUpdate streams cleanly", async () => {
    const other = await startTestServer();
    await other.client.createModel("vu-stop");
    const updates = collect(other.client.versionUpdate("vu-stop"));
    await sleep(50);
    const stopped = other.close();
    await updates.until(() => updates.ended || updates.error !== undefined);
    await stopped;
    assert.equal(updates.error, undefined);
    assert.equal(updates.ended, true);
  });
});
