/*
 * A stop during a start whose model listing stalls: the start is stopped at once (exit 0), not after
 * the listing (the store's timeouts and retries: minutes).
 *
 * A graceful stop whose archive stalls: the calls are cancelled after SHUTDOWN_GRACE_PERIOD, then the
 * registry's final writes (commits in flight, the next-number records) get at most the grace period
 * again, at least 5 s; past that the server exits with status 1 and says why, instead of waiting for
 * the store's timeouts and retries (ARCHIVE_S3_TIMEOUT is 10 minutes here: without the bound this
 * test would wait for it).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { setTimeout as sleep } from "node:timers/promises";
import { RegistryClient } from "../support/registry-client.js";
import { type S3FaultProxy, startS3FaultProxy } from "../support/s3-fault-proxy.js";
import { killAllS3TestServers, type S3TestServer, startS3TestServer } from "../support/s3-test-server.js";
import { freeLoopbackPort } from "../support/redis-server.js";
import { killAllServers, spawnServer, spawnServerUnwaited } from "../support/server-process.js";

const BUCKET = "models";
let s3: S3TestServer;
let proxy: S3FaultProxy;

before(async () => {
  s3 = await startS3TestServer([BUCKET]);
  proxy = await startS3FaultProxy(s3.port);
});

after(async () => {
  killAllServers();
  await proxy?.close();
  await s3?.close(); // and its directory
  killAllS3TestServers();
});

test("SIGTERM while an archived commit's PUT is stalled: the call is cancelled after the grace period, the server exits 1 saying what it did not finish", async () => {
  const server = await spawnServer({
    ...s3.awsEnv(),
    AWS_ENDPOINT_URL_S3: proxy.endpoint,
    COGMENT_MODEL_REGISTRY_ARCHIVE_URL: `s3://${BUCKET}/stop/`,
    COGMENT_MODEL_REGISTRY_ARCHIVE_S3_FORCE_PATH_STYLE: "true",
    COGMENT_MODEL_REGISTRY_ARCHIVE_S3_TIMEOUT: "10m",
    COGMENT_MODEL_REGISTRY_SHUTDOWN_GRACE_PERIOD: "1s",
  });
  const client = new RegistryClient(`127.0.0.1:${server.port}`);
  try {
    await client.createModel("m");
    proxy.inject({ method: "PUT", path: /\/stop\/m\/m-v000001\.yaml/, fault: { kind: "stall" } });
    const upload = client.publish("m", Buffer.from("data"), { archived: true }).then(
      () => undefined,
      (error: { code: number; details: string }) => error,
    );
    while (!proxy.requests.some((request) => /m-v000001\.yaml/.test(request.path))) {
      await sleep(20);
    }
    server.child.kill("SIGTERM");
    assert.equal(await server.exited, 1);
    const failed = await upload;
    assert.equal(failed?.code, status.CANCELLED);
    const stopError = server.logLines.find((line) => line.msg === "error while stopping");
    assert.equal(
      (stopError?.err as { message?: string } | undefined)?.message,
      "the archive did not finish the commits in flight and the next-number records within 5000 ms after the calls ended: stopped without them (numbering stays above every number handed out)",
    );
  } finally {
    proxy.clear();
    client.close();
  }
});

test("SIGTERM while the model listing is stalled: the start stops at once, exit 0, without serving", async () => {
  const port = await freeLoopbackPort();
  // Every listing of the archive's prefix stalls: the server binds (Version is served), the model list never comes.
  proxy.inject({ method: "GET", path: /^\/models\/?\?.*list-type=2/, fault: { kind: "stall" } });
  const server = spawnServerUnwaited({
    ...s3.awsEnv(),
    AWS_ENDPOINT_URL_S3: proxy.endpoint,
    COGMENT_MODEL_REGISTRY_PORT: String(port),
    COGMENT_MODEL_REGISTRY_ARCHIVE_URL: `s3://${BUCKET}/listing/`,
    COGMENT_MODEL_REGISTRY_ARCHIVE_S3_FORCE_PATH_STYLE: "true",
    COGMENT_MODEL_REGISTRY_ARCHIVE_S3_TIMEOUT: "10m",
  });
  const client = new RegistryClient(`127.0.0.1:${port}`);
  try {
    for (;;) {
      const listening = await client.version().then(
        () => true,
        () => false,
      );
      if (listening) {
        break;
      }
      assert.equal(server.child.exitCode, null, `the server exited before listening; stderr: ${server.stderr()}`);
      await sleep(20);
    }
    assert.ok(
      proxy.requests.some((request) => request.fault === "stall"),
      "the model listing is stalled",
    );
    server.child.kill("SIGTERM");
    // Without the stop of the start, this waits for the listing (ARCHIVE_S3_TIMEOUT, 10 minutes):
    // killed after 30 s, the exit is SIGKILL and the test fails.
    const hangGuard = setTimeout(() => server.child.kill("SIGKILL"), 30_000);
    const exit = await server.exited;
    clearTimeout(hangGuard);
    assert.equal(exit, 0);
    const messages = server.logLines.map((line) => line.msg);
    assert.deepEqual(
      messages.filter((message) => message === "signal during start-up: stopping the start" || message === "model registry serving" || message === "stopped"),
      ["signal during start-up: stopping the start", "stopped"],
    );
  } finally {
    proxy.clear();
    client.close();
  }
});
