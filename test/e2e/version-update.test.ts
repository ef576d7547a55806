import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { HealthClient } from "../support/health-client.js";
import { type TestServer, startTestServer } from "../support/test-server.js";
import type { WireVersionInfo } from "../support/registry-client.js";

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

  // Was an OK end: clients (the Python SDK) take OK for "done" and keep a stale latest silently.
  test("deleting the model ends the stream with NOT_FOUND saying why", async () => {
    await t.client.createModel("vu-delete");
    await t.client.publish("vu-delete", Buffer.from("x"));
    const updates = collect(t.client.versionUpdate("vu-delete"));
    await updates.until(() => updates.received.length === 1);
    await t.client.deleteModel("vu-delete");
    await updates.until(() => updates.ended || updates.error !== undefined);
    assert.equal(updates.error?.code, grpc.status.NOT_FOUND);
    assert.equal(updates.error?.details, 'model "vu-delete" was deleted: this VersionUpdate stream has no more versions to send');
    assert.deepEqual(updates.numbers(), [1]);
  });

  test("cancellation releases the subscriber", async () => {
    await t.client.createModel("vu-cancel");
    const subscribers = async (): Promise<string | undefined> => (await t.client.status(["subscribers"])).statuses.subscribers;
    const baseline = Number(await subscribers());
    const stream = t.client.versionUpdate("vu-cancel");
    stream.on("error", () => {});
    const deadline = Date.now() + 30_000;
    while (Number(await subscribers()) !== baseline + 1 && Date.now() < deadline) await sleep(10);
    assert.equal(Number(await subscribers()), baseline + 1);
    stream.cancel();
    while (Number(await subscribers()) !== baseline && Date.now() < deadline) await sleep(10);
    assert.equal(Number(await subscribers()), baseline);
  });

  test("Version names the service and its version", async () => {
    const reply = await t.client.version();
    const { packageInfo } = await import("../../src/package-info.js");
    assert.deepEqual(reply.versions[0], { name: "model_registry", version: packageInfo.version });
  });

  test("Status: named keys, '*' for all, unknown names omitted", async () => {
    const some = await t.client.status(["overall_load", "models", "no_such_key"]);
    assert.deepEqual(Object.keys(some.statuses).sort(), ["models", "overall_load"]);
    // overall_load: the cache budget's used share as an integer percentage (the Cogment Directory parses a uint8).
    const load = await t.client.status(["overall_load", "cache_used_bytes", "cache_max_bytes"]);
    const { overall_load: overallLoad, cache_used_bytes: used, cache_max_bytes: max } = load.statuses;
    assert.equal(overallLoad, String(Math.round((Number(used) * 100) / Number(max))));
    const all = await t.client.status(["*"]);
    for (const key of ["overall_load", "models", "subscribers", "cache_used_bytes", "cached_versions", "cache_max_bytes", "worker_threads"]) {
      assert.ok(key in all.statuses, key);
    }
    const none = await t.client.status([]);
    assert.deepEqual(none.statuses, {});
  });

  test("grpc.health.v1 reports SERVING; unknown services are NOT_FOUND", async () => {
    const health = new HealthClient(t.address);
    try {
      assert.equal(await health.check(""), "SERVING");
      assert.equal(await health.check("cogmentAPI.ModelRegistrySP"), "SERVING");
      await assert.rejects(health.check("no.such.Service"), {
        code: grpc.status.NOT_FOUND,
        details: 'unknown service "no.such.Service"',
      });
      // Quoted cut to 256 UTF-16 units, never through the middle of a character.
      await assert.rejects(health.check(`${"s".repeat(255)}😀`), {
        code: grpc.status.NOT_FOUND,
        details: `unknown service "${"s".repeat(255)}"`,
      });
      assert.equal(await health.check(""), "SERVING");
    } finally {
      health.close();
    }
  });

  test("health Watch sends SERVING, then NOT_SERVING when the server stops, then ends", async () => {
    const other = await startTestServer();
    const health = new HealthClient(other.address);
    try {
      const statuses: string[] = [];
      const watch = health.watch("");
      watch.on("data", (reply) => statuses.push(reply.status));
      const ended = new Promise<string>((resolve) => {
        watch.on("end", () => resolve("end"));
        watch.on("error", (error: grpc.ServiceError) => resolve(`error ${error.code}`));
      });
      while (statuses.length === 0) await sleep(10);
      assert.deepEqual(statuses, ["SERVING"]);
      await other.close();
      assert.equal(await ended, "end");
      assert.deepEqual(statuses, ["SERVING", "NOT_SERVING"]);
    } finally {
      health.close();
    }
  });

  test("gRPC reflection, when enabled, lists the services", async () => {
    const other = await startTestServer({ grpcReflection: true });
    try {
      const { fileURLToPath } = await import("node:url");
      const { loadSync } = await import("@grpc/proto-loader");
      const reflectionProto = fileURLToPath(import.meta.resolve("@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto"));
      const pkg = grpc.loadPackageDefinition(loadSync(reflectionProto, { keepCase: true })) as unknown as {
        grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
      };
      const client = new pkg.grpc.reflection.v1.ServerReflection(other.address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
        ServerReflectionInfo(): grpc.ClientDuplexStream<object, { list_services_response?: { service: { name: string }[] } }>;
      };
      const stream = client.ServerReflectionInfo();
      const reply = await new Promise<{ list_services_response?: { service: { name: string }[] } }>((resolve, reject) => {
        stream.once("data", resolve);
        stream.once("error", reject);
        stream.write({ list_services: "" });
      });
      stream.end();
      client.close();
      const names = (reply.list_services_response?.service ?? []).map((s) => s.name).sort();
      assert.deepEqual(names, ["cogmentAPI.ModelRegistrySP", "grpc.health.v1.Health"]);
    } finally {
      await other.close();
    }
  });

  // Was an OK end, which clients take for "done": UNAVAILABLE is the standard "try again".
  test("server stop ends open VersionUpdate streams with UNAVAILABLE at once, not after the grace period", async () => {
    const other = await startTestServer({ shutdownGraceMs: 60_000 });
    await other.client.createModel("vu-stop");
    await other.client.publish("vu-stop", Buffer.from("x"));
    const updates = collect(other.client.versionUpdate("vu-stop"));
    await updates.until(() => updates.received.length === 1);
    // A stalled upload keeps the server in its grace period until the client gives up.
    const upload = other.client.openCreateVersion();
    upload.reply.catch(() => {});
    upload.call.write({ header: { version_info: { model_id: "vu-stop", data_size: "100" } } });
    // The stop must find the upload running: wait until the server took its header (bounded).
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(10)) {
      if ((await other.client.status(["uploads_in_flight"])).statuses.uploads_in_flight === "1") {
        break;
      }
    }
    assert.equal((await other.client.status(["uploads_in_flight"])).statuses.uploads_in_flight, "1");
    let stopDone = false;
    const stopped = other.server.stop().then(() => (stopDone = true));
    try {
      await updates.until(() => updates.error !== undefined);
      assert.equal(stopDone, false, "the stream ended while the server still waited for the upload");
      assert.equal(updates.error?.code, grpc.status.UNAVAILABLE);
      assert.equal(
        updates.error?.details,
        'the model registry is stopping: VersionUpdate of model "vu-stop" ended; call it again once the server is back',
      );
    } finally {
      upload.call.cancel();
      await stopped;
    }
    await other.close();
  });
});
