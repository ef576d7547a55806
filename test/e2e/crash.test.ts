import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, test } from "node:test";
import { leftoversStillThere } from "../support/leftover-files.js";
import { RegistryClient } from "../support/registry-client.js";
import { type ServerProcess, killAllServers, removeArchiveAfterServers, spawnServer } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";

after(killAllServers);

const ROUNDS = 20;
const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

/** Deterministic pseudo-random numbers, so a failure can be replayed. */
function createRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

async function uploadUntilKilled(server: ServerProcess, random: () => number, acknowledged: Map<number, string>): Promise<void> {
  const clients = [0, 1].map(() => new RegistryClient(`127.0.0.1:${server.port}`));
  let running = true;
  let firstAcknowledged: () => void = () => undefined;
  const oneAcknowledged = new Promise<void>((resolve) => (firstAcknowledged = resolve));
  const loops = clients.map(async (client) => {
    while (running) {
      const data = Buffer.alloc(1 + Math.floor(random() * 1_500_000), Math.floor(random() * 256));
      data.writeUInt32LE(Math.floor(random() * 2 ** 32), 0);
      try {
        const info = await client.publish("crash", data, { archived: true, chunkBytes: 256 * 1024 });
        acknowledged.set(info.version_number, sha256(data));
        firstAcknowledged();
      } catch {
        return; // the server died mid-call: that upload was never acknowledged
      }
    }
  });
  // Each round kills the server mid-upload after at least one acknowledged upload, however slow the
  // machine: a fixed delay alone left some rounds without any on a loaded box.
  await Promise.race([oneAcknowledged, Promise.all(loops)]); // (all loops over: the server died by itself)
  await sleep(150 + random() * 350);
  server.child.kill("SIGKILL");
  await server.exited;
  running = false;
  await Promise.all(loops);
  for (const client of clients) client.close();
}

test(`kill -9 during archived uploads, ${ROUNDS} times: only whole versions, every acknowledged one intact`, async (t) => {
  const archiveDir = await makeArchiveDir();
  const env = { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir };
  const random = createRandom(20261126);
  const acknowledged = new Map<number, string>();
  // Whatever fails, no server process outlives the test, and none writes into the archive as it goes.
  removeArchiveAfterServers(t, archiveDir);

  for (let round = 0; round < ROUNDS; round++) {
    const server = await spawnServer(env);
    if (round === 0) {
      const client = new RegistryClient(`127.0.0.1:${server.port}`);
      await client.createModel("crash");
      client.close();
    }
    await uploadUntilKilled(server, random, acknowledged);
  }
  assert.ok(acknowledged.size >= ROUNDS, `only ${acknowledged.size} uploads were acknowledged`);

  const server = await spawnServer(env);
  const client = new RegistryClient(`127.0.0.1:${server.port}`);
  try {
    const leftovers = (await readdir(path.join(archiveDir, "crash"))).filter((name) => name.includes(".tmp-"));
    // Removed in the background once the listing is done (nothing writes into the archive meanwhile).
    assert.deepEqual(
      await leftoversStillThere(leftovers.map((name) => path.join(archiveDir, "crash", name))),
      [],
      "temp files from the crashes are cleaned up after the start",
    );
    const listed = new Map<number, string>();
    let handle = "";
    for (;;) {
      const page = await client.retrieveVersionInfos({ model_id: "crash", version_handle: handle, versions_count: 50 });
      for (const info of page.version_infos) listed.set(info.version_number, info.data_hash);
      if (page.version_infos.length === 0) break;
      handle = page.next_version_handle;
    }
    for (const [versionNumber, hash] of acknowledged) {
      assert.equal(listed.get(versionNumber), hash, `acknowledged version ${versionNumber} is served with its hash`);
    }
    for (const [versionNumber, hash] of listed) {
      const data = await client.retrieveData("crash", versionNumber);
      assert.equal(sha256(data), hash, `version ${versionNumber}'s data matches its data_hash`);
    }
    const numbers = [...listed.keys()];
    assert.equal(new Set(numbers).size, numbers.length);
  } finally {
    client.close();
    server.child.kill("SIGTERM");
    await server.exited;
  }
});
