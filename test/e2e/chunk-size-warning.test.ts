// SENT_MODEL_VERSION_DATA_CHUNK_SIZE past what stock clients (gRPC's 4 MiB receive limit) accept:
// the server warns at start, and the limit it names is the real one.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { STOCK_CLIENT_MAX_CHUNK_SIZE, configWarnings, loadConfig } from "../../src/config.js";
import { RegistryClient } from "../support/registry-client.js";
import { killAllServers, spawnServerOnTempArchive } from "../support/server-process.js";
import { startTestServer } from "../support/test-server.js";

const VARIABLE = "COGMENT_MODEL_REGISTRY_SENT_MODEL_VERSION_DATA_CHUNK_SIZE";
const message =
  `${VARIABLE} is larger than stock clients receive: with gRPC's default 4 MiB receive limit they accept chunks of at most 4194299 bytes, ` +
  "so every download fails in them (the Cogment SDK's retrieve_model returns None); unset it (default 2097152) or set at most 4194299";

after(killAllServers);

describe("chunk sizes stock clients cannot receive", () => {
  test("the limit is 4 MiB less the 5 bytes a reply chunk adds", () => {
    assert.equal(STOCK_CLIENT_MAX_CHUNK_SIZE, 4_194_299);
    const warnings = (value: string) => configWarnings(loadConfig({ [VARIABLE]: value }));
    assert.deepEqual(warnings("4194299"), []);
    assert.deepEqual(warnings("1"), []);
    assert.deepEqual(configWarnings(loadConfig({})), []);
    assert.deepEqual(warnings("4194300"), [{ variable: VARIABLE, value: 4_194_300, limit: 4_194_299, message }]);
    assert.deepEqual(warnings("67108864"), [{ variable: VARIABLE, value: 67_108_864, limit: 4_194_299, message }]);
  });

  for (const value of ["5242880", "4194300"]) {
    test(`${value}: the server warns at start, naming the variable, the value and the limit, and serves`, async (t) => {
      const server = await spawnServerOnTempArchive(t, { [VARIABLE]: value });
      t.after(async () => {
        server.child.kill("SIGTERM");
        await server.exited;
      });
      const warned = server.logLines.filter((line) => line.variable === VARIABLE);
      assert.deepEqual(
        warned.map(({ level, variable, value: logged, limit, msg }) => ({ level, variable, value: logged, limit, msg })),
        [{ level: 40, variable: VARIABLE, value: Number(value), limit: 4_194_299, msg: message }],
      );
      const serving = server.logLines.findIndex((line) => line.msg === "model registry serving");
      assert.ok(server.logLines.indexOf(warned[0] as Record<string, unknown>) < serving, "before the server is up");
    });
  }

  test("4194299 (and the default) start without the warning", async (t) => {
    for (const env of [{ [VARIABLE]: "4194299" }, {}] as Record<string, string>[]) {
      const server = await spawnServerOnTempArchive(t, env);
      server.child.kill("SIGTERM");
      assert.equal(await server.exited, 0);
      assert.deepEqual(server.logLines.filter((line) => JSON.stringify(line).includes("SENT_MODEL_VERSION_DATA_CHUNK_SIZE")), []);
    }
  });

  test("a client with gRPC's default receive limit gets chunks of 4194299 bytes and fails on 4194300", async (t) => {
    const size = 4_194_300;
    const data = Buffer.alloc(size, 7);
    for (const [chunkSize, fits] of [
      [4_194_299, true],
      [4_194_300, false],
    ] as const) {
      const server = await startTestServer({ sentChunkSize: chunkSize });
      t.after(() => server.close());
      await server.client.createModel("m");
      await server.client.publish("m", data);
      const stock = new RegistryClient(server.address, { "grpc.max_receive_message_length": 4 * 1024 * 1024 });
      t.after(() => stock.close());
      if (fits) {
        const chunks = await stock.retrieveVersionData("m", 1);
        assert.deepEqual(chunks.map((chunk) => chunk.length), [4_194_299, 1]);
      } else {
        await assert.rejects(stock.retrieveVersionData("m", 1), (error: { code: number; details: string }) => {
          assert.equal(error.code, grpc.status.RESOURCE_EXHAUSTED);
          assert.match(error.details, /Received message larger than max \(4194305 vs 4194304\)/);
          return true;
        });
      }
    }
  });
});
