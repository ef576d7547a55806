import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { SmallCallClient } from "../../bench/load/generator-protocol.js";
import { runSmallCallClients } from "../../bench/load/small-call-clients.js";
import type { SmallCall } from "../../bench/load/small-requests.js";
import { sharedNow } from "../../bench/support/clock.js";
import { type TestServer, startTestServer } from "../support/test-server.js";

const WINDOW_MS = 400;

describe("bench: the small-call clients (small-call-clients.ts) against the server", () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
    await server.client.createModel("small");
    await server.client.publish("small", Buffer.alloc(1024, 1));
  });

  after(async () => {
    await server?.close();
  });

  const run = (client: SmallCallClient, call: SmallCall, count: number) => {
    const windowStart = sharedNow();
    return runSmallCallClients(
      { role: "small-calls", client, address: server.address, call, modelId: "small", count, firstClient: 0, bodyBytes: 1024 },
      { windowStart, windowEnd: windowStart + WINDOW_MS },
      new AbortController().signal,
    );
  };

  for (const client of ["raw", "node-http2"] as const) {
    test(`${client}: every call of the window succeeds, and what the calls store is there`, async () => {
      const infos = await run(client, "infos", 3);
      assert.deepEqual([infos.errors, infos.firstError], [0, undefined]);
      assert.ok(infos.latenciesMs.length > 3, `${infos.latenciesMs.length} calls`);

      const before = (await server.client.retrieveVersionInfos({ model_id: "small", version_numbers: [-1] })).version_infos[0]?.version_number ?? 0;
      const versions = await run(client, "create-version", 2);
      assert.deepEqual([versions.errors, versions.firstError], [0, undefined]);
      const latest = (await server.client.retrieveVersionInfos({ model_id: "small", version_numbers: [-1] })).version_infos[0];
      // Calls that ended after the window are not counted, so at least as many versions as latencies.
      assert.ok((latest?.version_number ?? 0) - before >= versions.latenciesMs.length, `${latest?.version_number} after ${before}`);
      assert.equal(latest?.data_size, "1024");

      const models = await run(client, "create-model", 2);
      assert.deepEqual([models.errors, models.firstError], [0, undefined]);
      const listed = await server.client.retrieveModels({ model_ids: ["small-0", "small-1"] });
      assert.deepEqual(
        listed.model_infos.map((info) => info.model_id),
        ["small-0", "small-1"],
      );
    });
  }
});
