/*
 * COGMENT_MODEL_REGISTRY_MAX_CONCURRENT_STREAMS: a connection's open calls are bounded (HTTP/2
 * SETTINGS_MAX_CONCURRENT_STREAMS); a call beyond the bound waits for a free stream, and gets one
 * as soon as another call ends.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { status } from "@grpc/grpc-js";
import { RegistryClient } from "../support/registry-client.js";
import { killAllServers, spawnServerOnTempArchive } from "../support/server-process.js";
import { followVersionUpdates } from "../support/version-update-follower.js";

test.after(killAllServers);

/** A Version call with a deadline: resolves with its status code (0 for OK). */
function versionCall(client: RegistryClient, deadlineMs: number): Promise<number> {
  return new Promise((resolve) => {
    const method = client.raw.Version as (request: object, options: { deadline: Date }, callback: (error: { code: number } | null) => void) => unknown;
    method.call(client.raw, {}, { deadline: new Date(Date.now() + deadlineMs) }, (error) => resolve(error === null ? status.OK : error.code));
  });
}

test("with MAX_CONCURRENT_STREAMS=2, a third call on the connection waits until one of two open streams ends", async (t) => {
  const server = await spawnServerOnTempArchive(t, { COGMENT_MODEL_REGISTRY_MAX_CONCURRENT_STREAMS: "2" });
  assert.equal(server.logLines.find((line) => line.msg === "model registry serving")?.maxConcurrentStreams, 2);
  const client = new RegistryClient(`127.0.0.1:${server.port}`);
  t.after(() => client.close());
  await client.createModel("m");
  await client.publish("m", Buffer.from("weights"));

  // Two long-lived calls on the client's one connection.
  const first = followVersionUpdates(client, "m", 10_000);
  const second = followVersionUpdates(client, "m", 10_000);
  t.after(() => {
    first.cancel();
    second.cancel();
  });
  await first.until(() => first.numbers.length === 1, "the first stream's latest version");
  await second.until(() => second.numbers.length === 1, "the second stream's latest version");

  // No stream free: the call is never sent, and its deadline passes.
  assert.equal(await versionCall(client, 500), status.DEADLINE_EXCEEDED);

  first.cancel();
  // The server counts a stream until it has closed it: a call sent the moment the client reset
  // another can still be refused (RESOURCE_EXHAUSTED). Watched from another connection.
  const watcher = new RegistryClient(`127.0.0.1:${server.port}`, { "grpc.use_local_subchannel_pool": 1 });
  t.after(() => watcher.close());
  for (let tries = 0; (await watcher.status(["subscribers"])).statuses.subscribers !== "1"; tries++) {
    assert.ok(tries < 500, "the cancelled stream never ended on the server");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  // Node drops the stream from its count a moment after the call's end is seen: a refusal then is
  // retried, as a client would (it was never processed).
  let code = await versionCall(client, 10_000);
  for (let retries = 0; code === status.RESOURCE_EXHAUSTED && retries < 10; retries++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    code = await versionCall(client, 10_000);
  }
  assert.equal(code, status.OK);
  assert.deepEqual(second.numbers, [1]);
});

test("without MAX_CONCURRENT_STREAMS a connection opens as many calls as it likes", async (t) => {
  const server = await spawnServerOnTempArchive(t);
  assert.equal(server.logLines.find((line) => line.msg === "model registry serving")?.maxConcurrentStreams, 0);
  const client = new RegistryClient(`127.0.0.1:${server.port}`);
  t.after(() => client.close());
  await client.createModel("m");
  await client.publish("m", Buffer.from("weights"));
  const followers = Array.from({ length: 3 }, () => followVersionUpdates(client, "m", 10_000));
  t.after(() => followers.forEach((follower) => follower.cancel()));
  for (const follower of followers) {
    await follower.until(() => follower.numbers.length === 1, "the latest version");
  }
  assert.equal(await versionCall(client, 10_000), status.OK);
});
