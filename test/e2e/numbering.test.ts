// Version numbers across restarts of the real server process: exact after a graceful stop and
// after a crash of the process, as the original continues (highest on disk + 1) on its archives.
import assert from "node:assert/strict";
import { cp, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { after, describe, test } from "node:test";
import type { TestContext } from "node:test";
import { ORIGINAL_ARCHIVE } from "../support/fixtures.js";
import { RegistryClient } from "../support/registry-client.js";
import { type ServerProcess, killAllServers, spawnServer } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";

after(killAllServers);

const BOOT_ID = (await readFile("/proc/sys/kernel/random/boot_id", "utf8").catch(() => "")).trim();
const noBootId = BOOT_ID === "" ? "this machine has no /proc/sys/kernel/random/boot_id: after a crash of the process numbering skips ahead by design" : false;

interface Running {
  readonly server: ServerProcess;
  readonly client: RegistryClient;
}

async function start(t: TestContext, archiveDir: string): Promise<Running> {
  const server = await spawnServer({ COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir });
  const client = new RegistryClient(`127.0.0.1:${server.port}`);
  t.after(() => {
    client.close();
    server.child.kill("SIGKILL");
  });
  return { server, client };
}

async function stop({ server, client }: Running, signal: "SIGTERM" | "SIGINT" | "SIGKILL"): Promise<void> {
  client.close();
  server.child.kill(signal);
  assert.equal(await server.exited, signal === "SIGKILL" ? "SIGKILL" : 0);
}

async function tempArchive(t: TestContext): Promise<string> {
  const archiveDir = await makeArchiveDir();
  t.after(() => rm(archiveDir, { recursive: true, force: true }));
  return archiveDir;
}

const numbers = (versions: readonly { version_number: number }[]): number[] => versions.map((v) => v.version_number);

async function publishMany(client: RegistryClient, modelId: string, count: number, archived = false): Promise<number[]> {
  const published: number[] = [];
  for (let i = 0; i < count; i++) {
    published.push((await client.publish(modelId, Buffer.from(`${modelId} ${i}`), { archived })).version_number);
  }
  return published;
}

const recordOf = (archiveDir: string, modelId: string): Promise<string> =>
  readFile(path.join(archiveDir, modelId, ".cogment-ts-version-record"), "utf8").then((text) => text.trim());

describe("version numbers across restarts", () => {
  test("after SIGTERM and SIGINT: exactly one more than the highest handed out, transient versions included, over three restarts", async (t) => {
    const archiveDir = await tempArchive(t);
    let running = await start(t, archiveDir);
    await running.client.createModel("graceful");
    assert.deepEqual(await publishMany(running.client, "graceful", 3), [1, 2, 3]);
    const signals = ["SIGTERM", "SIGINT", "SIGTERM"] as const;
    for (const [round, signal] of signals.entries()) {
      await stop(running, signal);
      assert.equal(await recordOf(archiveDir, "graceful"), `next=${4 + round} boot=${BOOT_ID || "-"} state=stopped`);
      running = await start(t, archiveDir);
      assert.deepEqual(await publishMany(running.client, "graceful", 1), [4 + round], `after ${signal} (restart ${round + 1})`);
    }
    assert.deepEqual(numbers((await running.client.retrieveVersionInfos({ model_id: "graceful" })).version_infos), [6]);
    await stop(running, "SIGTERM");
  });

  test("after kill -9: exactly one more than the highest handed out, transient versions included", { skip: noBootId }, async (t) => {
    const archiveDir = await tempArchive(t);
    let running = await start(t, archiveDir);
    await running.client.createModel("killed");
    await running.client.createModel("killed-archived");
    assert.deepEqual(await publishMany(running.client, "killed", 5), [1, 2, 3, 4, 5]);
    assert.deepEqual(await publishMany(running.client, "killed-archived", 2, true), [1, 2]);
    assert.deepEqual(await publishMany(running.client, "killed-archived", 1), [3]);
    for (const round of [0, 1]) {
      await stop(running, "SIGKILL");
      assert.equal(await recordOf(archiveDir, "killed"), `next=${6 + round} boot=${BOOT_ID} state=running`);
      running = await start(t, archiveDir);
      assert.deepEqual(await publishMany(running.client, "killed", 1), [6 + round], `after kill -9 number ${round + 1}`);
      assert.deepEqual(await publishMany(running.client, "killed-archived", 1), [4 + round]);
    }
    await stop(running, "SIGTERM");
  });

  test("a model whose versions are all archived, 1 to 4: after a restart the next is 5", async (t) => {
    const archiveDir = await tempArchive(t);
    let running = await start(t, archiveDir);
    await running.client.createModel("archived-only");
    assert.deepEqual(await publishMany(running.client, "archived-only", 4, true), [1, 2, 3, 4]);
    await stop(running, "SIGTERM");
    running = await start(t, archiveDir);
    assert.deepEqual(numbers((await running.client.retrieveVersionInfos({ model_id: "archived-only" })).version_infos), [1, 2, 3, 4]);
    assert.deepEqual(await publishMany(running.client, "archived-only", 1), [5]);
    await stop(running, "SIGTERM");
  });

  test("an archive written by the original server: policy_net has 1, 2 and 4, the next is 5", async (t) => {
    const archiveDir = await tempArchive(t);
    await cp(ORIGINAL_ARCHIVE, archiveDir, { recursive: true });
    const running = await start(t, archiveDir);
    assert.deepEqual(numbers((await running.client.retrieveVersionInfos({ model_id: "policy_net" })).version_infos), [1, 2, 4]);
    assert.deepEqual(await publishMany(running.client, "policy_net", 2), [5, 6]);
    await stop(running, "SIGTERM");
  });

  test("a deleted and re-created model starts again at 1, as in the original", async (t) => {
    const archiveDir = await tempArchive(t);
    let running = await start(t, archiveDir);
    await running.client.createModel("again");
    assert.deepEqual(await publishMany(running.client, "again", 3), [1, 2, 3]);
    await running.client.deleteModel("again");
    await running.client.createModel("again");
    assert.deepEqual(await publishMany(running.client, "again", 1), [1]);
    await stop(running, "SIGTERM");
    running = await start(t, archiveDir);
    assert.deepEqual(await publishMany(running.client, "again", 1), [2]);
    await stop(running, "SIGTERM");
  });
});
