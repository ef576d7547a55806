import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmod, cp, readFile, readdir, stat } from "node:fs/promises";
import path from "node:path";
import { describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { makeArchiveDir, startTestServer } from "../support/test-server.js";
import { ORIGINAL_ARCHIVE } from "../support/fixtures.js";

const FIXTURE = ORIGINAL_ARCHIVE;
const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

async function copyFixture(): Promise<string> {
  const dir = await makeArchiveDir();
  await cp(FIXTURE, dir, { recursive: true });
  // The shared fixture is read-only; the copy must be writable like a real archive.
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { recursive: true })) {
    await chmod(path.join(dir, entry), 0o755);
  }
  return dir;
}

describe("archive directory written by the original Go server", () => {
  test("is served unchanged: models, versions, data, numbering", async (t) => {
    const archiveDir = await copyFixture();
    const server = await startTestServer({ archiveDir });
    t.after(() => server.close());
    const { client } = server;

    const models = await client.retrieveModels();
    assert.deepEqual(models.model_infos, [
      { model_id: "empty_model", user_data: { note: "no versions" } },
      { model_id: "modèle agent:v1", user_data: { "clé:x": "a b", équipe: "rouge" } },
      { model_id: "policy_net", user_data: { type: "dqn", framework: "torch" } },
      { model_id: "value-net_2", user_data: {} },
    ]);
    assert.equal(models.next_model_handle, "4");

    const versions = await client.retrieveVersionInfos({ model_id: "policy_net" });
    assert.deepEqual(versions.version_infos, [
      {
        model_id: "policy_net",
        version_number: 1,
        creation_timestamp: "1633119005107454620",
        archived: true,
        data_hash: "jY0g3VkUK62ILPr2JuaW5g7uQi0EcJVZJu8IYp3yfhI=",
        data_size: "14",
        user_data: { step: "1000" },
      },
      {
        model_id: "policy_net",
        version_number: 2,
        creation_timestamp: "1633119625907957639",
        archived: true,
        data_hash: "stpb8nJXulMTAkybqMhoAM0vBn7e6vpc4NnZ2D7cyKE=",
        data_size: "5000",
        user_data: { step: "2000" },
      },
      {
        model_id: "policy_net",
        version_number: 4,
        creation_timestamp: "1633120000000000001",
        archived: true,
        data_hash: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        data_size: "0",
        user_data: { step: "3000" },
      },
    ]);
    assert.equal(versions.next_version_handle, "5");

    assert.equal((await client.retrieveData("policy_net", 1)).toString(), "chunk_1chunk_2");
    const v2 = await client.retrieveData("policy_net", 2);
    assert.ok(v2.equals(await readFile(path.join(FIXTURE, "policy_net/policy_net-v000002.data"))));
    assert.equal(sha256(v2), "stpb8nJXulMTAkybqMhoAM0vBn7e6vpc4NnZ2D7cyKE=");
    assert.deepEqual((await client.retrieveVersionData("policy_net", -1)).map((c) => c.length), [0]);
    await assert.rejects(client.retrieveVersionData("policy_net", 3), { code: status.NOT_FOUND });
    const value = await client.retrieveData("value-net_2", 1);
    assert.deepEqual([...value], Array.from({ length: 1024 }, (_, i) => i % 256));

    const next = await client.publish("policy_net", Buffer.from("new weights"));
    assert.ok(next.version_number >= 5, `next version ${next.version_number}`);

    const empty = await client.retrieveVersionInfos({ model_id: "empty_model" });
    assert.deepEqual(empty.version_infos, []);
  });

  test("what we write opens in the original's layout, byte for byte the same form", async (t) => {
    const server = await startTestServer();
    t.after(() => server.close());
    const { client, archiveDir } = server;
    await client.createModel("policy_net", { type: "dqn", framework: "torch" });
    await client.createVersion(
      { model_id: "policy_net", archived: true, data_size: 14, creation_timestamp: "1633119005107454620", user_data: { step: "1000" } },
      ["chunk_1", "chunk_2"],
    );
    const dir = path.join(archiveDir, "policy_net");
    const files = (await readdir(dir)).filter((name) => !name.startsWith("."));
    assert.deepEqual(files.sort(), ["policy_net-v000001.data", "policy_net-v000001.yaml", "policy_net.yaml"]);
    assert.equal(
      await readFile(path.join(dir, "policy_net-v000001.yaml"), "utf8"),
      await readFile(path.join(FIXTURE, "policy_net/policy_net-v000001.yaml"), "utf8"),
    );
    assert.equal(await readFile(path.join(dir, "policy_net-v000001.data"), "utf8"), "chunk_1chunk_2");
    const modelYaml = await readFile(path.join(dir, "policy_net.yaml"), "utf8");
    assert.match(modelYaml, /^model_id: policy_net\nuser_data:\n/);
  });

  test("after a restart: models and archived versions are served, transient ones are gone, numbers never reused", async (t) => {
    const archiveDir = await makeArchiveDir(t);
    const first = await startTestServer({ archiveDir });
    await first.client.createModel("persist", { k: "v" });
    const archived = Buffer.alloc(300_000, 3);
    const a1 = await first.client.publish("persist", archived, { archived: true, user_data: { kind: "archived" } });
    const t2 = await first.client.publish("persist", Buffer.from("transient"));
    assert.deepEqual([a1.version_number, t2.version_number], [1, 2]);
    await first.stop();

    const second = await startTestServer({ archiveDir });
    t.after(() => second.stop());
    const models = await second.client.retrieveModels();
    assert.deepEqual(models.model_infos, [{ model_id: "persist", user_data: { k: "v" } }]);
    const infos = await second.client.retrieveVersionInfos({ model_id: "persist" });
    assert.deepEqual(infos.version_infos, [{ ...a1 }]);
    assert.ok((await second.client.retrieveData("persist", 1)).equals(archived));
    await assert.rejects(second.client.retrieveData("persist", 2), { code: status.NOT_FOUND });
    const next = await second.client.publish("persist", Buffer.from("after restart"));
    assert.equal(next.version_number, 3, "exactly after 2 (a transient version clients already saw): no reuse, no gap");
  });

  test("the version-number high-water mark is written once per 1024 versions, not on every publish", async (t) => {
    const server = await startTestServer();
    t.after(() => server.close());
    const { client, archiveDir } = server;
    await client.createModel("mark");
    const markFile = path.join(archiveDir, "mark", ".cogment-ts-next-version");
    await client.publish("mark", Buffer.from("v1"));
    const written = await stat(markFile);
    assert.equal(await readFile(markFile, "utf8"), "1025");
    for (let i = 2; i <= 20; i++) {
      await client.publish("mark", Buffer.from(`v${i}`));
    }
    const after = await stat(markFile);
    assert.equal(await readFile(markFile, "utf8"), "1025");
    assert.equal(after.ino, written.ino, "the file was not rewritten (an atomic rewrite would change its inode)");
    assert.equal(after.mtimeMs, written.mtimeMs);
  });
});
