import assert from "node:assert/strict";
import { createRequire } from "node:module";
import path from "node:path";
import { test } from "node:test";
import { createLogger } from "../../src/logger.js";
import { startServer } from "../../src/server.js";
import { DEFAULT_TEST_CONFIG, makeArchiveDir, startTestServer } from "../support/test-server.js";
import { rm } from "node:fs/promises";

const require = createRequire(import.meta.url);
const PROM_CLIENT_DIR = `${path.sep}node_modules${path.sep}prom-client${path.sep}`;

function promClientLoaded(): boolean {
  return Object.keys(require.cache).some((file) => file.includes(PROM_CLIENT_DIR));
}

test("a server whose metrics endpoint is off never loads prom-client; one that serves metrics does", async (t) => {
  assert.equal(promClientLoaded(), false, "loaded before any server started");
  const plain = await startTestServer();
  t.after(() => plain.close());
  await plain.client.createModel("m");
  const listed = await plain.client.retrieveModels();
  assert.deepEqual(
    listed.model_infos.map((info) => info.model_id),
    ["m"],
  );
  assert.equal(promClientLoaded(), false, "loaded by a server without metrics");

  // The check itself can see prom-client: a server serving metrics loads it.
  const archiveDir = await makeArchiveDir();
  const withMetrics = await startServer({ ...DEFAULT_TEST_CONFIG, archiveDir }, createLogger("silent"), {
    host: "127.0.0.1",
    metricsListen: { port: 0, host: "127.0.0.1" },
  });
  t.after(async () => {
    await withMetrics.stop();
    await rm(archiveDir, { recursive: true, force: true });
  });
  assert.equal(typeof withMetrics.metricsPort, "number");
  assert.equal(promClientLoaded(), true, "not seen after a server with metrics started");
});
