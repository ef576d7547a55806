// Version numbers across restarts of the real server process: exact after a graceful stop and
// after a crash of the process, as the original continues (highest on disk + 1) on its archives.
import assert from "node:assert/strict";
import { cp, readFile } from "node:fs/promises";
import path from "node:path";
import { after, describe, test } from "node:test";
import type { TestContext } from "node:test";
import { ORIGINAL_ARCHIVE } from "../support/fixtures.js";
import { RegistryClient } from "../support/registry-client.js";
import { type ServerProcess, killAllServers, removeArchiveAfterServers, spawnServer } from "../support/server-process.js";
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
  removeArchiveAfterServers(t, archiveDir);
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

  test("kill -9 while 8 clients publish: numbering resumes right after the last number handed out", { skip: noBootId }, async (t) => {
    const archiveDir = await tempArchive(t);
    const running = await start(t, archiveDir);
    await running.client.createModel("busy");
    const clients = 8;
    const acknowledged: number[] = [];
    let killed = false;
    const publisher = async (index: number): Promise<void> => {
      const client = new RegistryClient(`127.0.0.1:${running.server.port}`);
      try {
        while (!killed) {
          let version: { version_number: number };
          try {
            version = await client.publish("busy", Buffer.alloc(1024, index));
          } catch (error) {
            if (killed) {
              return; // the call the kill cut
            }
            throw error;
          }
          acknowledged.push(version.version_number);
          if (acknowledged.length >= 400 && !killed) {
            killed = true; // the other clients' calls are in flight: the record is being written turn after turn
            running.server.child.kill("SIGKILL");
          }
        }
      } finally {
        client.close();
      }
    };
    await Promise.all(Array.from({ length: clients }, (_, index) => publisher(index)));
    running.client.close();
    assert.equal(await running.server.exited, "SIGKILL");
    const highestAcknowledged = Math.max(...acknowledged);
    assert.equal(new Set(acknowledged).size, acknowledged.length, "no number handed out twice");
    const match = /^next=([0-9]+) boot=(\S+) state=running$/.exec(await recordOf(archiveDir, "busy"));
    assert.ok(match !== null, "a running record");
    const next = Number(match[1]);
    assert.equal(match[2], BOOT_ID);
    // Committed, recorded, but not yet acknowledged when the process died: at most one call per client.
    assert.ok(next > highestAcknowledged && next <= highestAcknowledged + 1 + clients, `next=${next} after ${highestAcknowledged} acknowledged`);
    const restarted = await start(t, archiveDir);
    assert.deepEqual(await publishMany(restarted.client, "busy", 1), [next], "exactly the recorded next number");
    await stop(restarted, "SIGTERM");
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
