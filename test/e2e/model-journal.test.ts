import assert from "node:assert/strict";
import { cp, readFile, readdir, writeFile } from "node:fs/promises";
import { after, test } from "node:test";
import { modelInfoPath } from "../../src/archive/layout.js";
import { encodeModelInfo } from "../../src/archive/yaml-codec.js";
import { ORIGINAL_ARCHIVE } from "../support/fixtures.js";
import { archiveRootEntries } from "../support/leftover-files.js";
import { RegistryClient } from "../support/registry-client.js";
import { type ServerProcess, killAllServers, removeArchiveAfterServers, spawnServer } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";

after(killAllServers);

const MODELS = Array.from({ length: 16 }, (_, index) => `journaled-${index}`);

async function killHard(server: ServerProcess): Promise<void> {
  server.child.kill("SIGKILL");
  await server.exited;
}

async function listModels(server: ServerProcess): Promise<Map<string, Record<string, string>>> {
  const client = new RegistryClient(`127.0.0.1:${server.port}`);
  try {
    const { model_infos } = await client.retrieveModels({});
    return new Map(model_infos.map((info) => [info.model_id, info.user_data]));
  } finally {
    client.close();
  }
}

/** What a machine crash may leave of the writes that were not flushed: every model file at `stale`. */
async function loseUnflushedWrites(archiveDir: string, modelIds: readonly string[], stale: (modelId: string) => string): Promise<void> {
  await Promise.all(modelIds.map((modelId) => writeFile(modelInfoPath(archiveDir, modelId), stale(modelId))));
}

test("kill -9 after acknowledged CreateOrUpdateModel calls, files' writes lost: the restart restores every acknowledged content", async (t) => {
  const archiveDir = await makeArchiveDir();
  const env = { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir };
  let current: ServerProcess | undefined;
  removeArchiveAfterServers(t, archiveDir);

  current = await spawnServer(env);
  const clients = MODELS.map(() => new RegistryClient(`127.0.0.1:${current?.port ?? 0}`));
  const acknowledged = new Map<string, Record<string, string>>();
  try {
    // A deletion checkpoints (flushes and empties the journal): done first, so that the updates
    // after it are only in the journal when the files' writes are lost.
    await clients[2]?.createModel("doomed", { step: "1" });
    await clients[2]?.deleteModel("doomed");
    for (let step = 1; step <= 20; step++) {
      await Promise.all(
        MODELS.map(async (modelId, index) => {
          const userData = { step: String(step), client: String(index) };
          await clients[index]?.createModel(modelId, userData);
          acknowledged.set(modelId, userData);
        }),
      );
    }
    // Two updates of one model at once: both answered, the later one wins.
    await Promise.all([clients[0]?.createModel("twice", { which: "first" }), clients[1]?.createModel("twice", { which: "second" })]);
    acknowledged.set("twice", { which: "second" });
  } finally {
    for (const client of clients) client.close();
  }
  await killHard(current);
  await loseUnflushedWrites(archiveDir, [...MODELS, "twice"], (modelId) => encodeModelInfo({ modelId, userData: { step: "stale" } }));

  current = await spawnServer(env);
  assert.deepEqual(await listModels(current), new Map([...acknowledged].sort(([a], [b]) => (a < b ? -1 : 1))));
  const restored = (server: ServerProcess): unknown[] =>
    server.logLines.filter((line) => line.msg === "model files restored from the journal after a crash").map((line) => line.files);
  assert.deepEqual(restored(current), [MODELS.length + 1]);

  // Replayed once: a second crash and restart finds the same, restores nothing.
  await killHard(current);
  current = await spawnServer(env);
  assert.deepEqual(await listModels(current), new Map([...acknowledged].sort(([a], [b]) => (a < b ? -1 : 1))));
  assert.deepEqual(restored(current), []);
  assert.equal((await readdir(archiveDir)).includes("doomed"), false, "the deleted model is not brought back");
});

test("the original's archive with our journal in it: same models listed, an update survives a crash", async (t) => {
  const archiveDir = await makeArchiveDir();
  await cp(ORIGINAL_ARCHIVE, archiveDir, { recursive: true });
  const env = { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir };
  let current: ServerProcess | undefined;
  removeArchiveAfterServers(t, archiveDir);
  const originalIds = (await readdir(ORIGINAL_ARCHIVE)).sort();
  const before = await readFile(modelInfoPath(archiveDir, "policy_net"), "utf8");

  current = await spawnServer(env);
  assert.deepEqual([...(await listModels(current)).keys()], originalIds);
  const client = new RegistryClient(`127.0.0.1:${current.port}`);
  try {
    await client.createModel("policy_net", { journaled: "yes" });
  } finally {
    client.close();
  }
  await killHard(current);
  await loseUnflushedWrites(archiveDir, ["policy_net"], () => before);

  current = await spawnServer(env);
  const models = await listModels(current);
  assert.deepEqual([...models.keys()], originalIds);
  assert.deepEqual(models.get("policy_net"), { journaled: "yes" });
  assert.deepEqual((await archiveRootEntries(archiveDir)).sort(), [".cogment-ts-journal", ".cogment-ts-single-mode-run", ...originalIds]);
});
