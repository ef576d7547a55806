import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { startTestServer } from "./support/test-server.js";

/** A small tmpfs gives real ENOSPC and EROFS errors; mounting needs root (CI runs as root). */
async function mountTmpfs(sizeBytes: number): Promise<string | undefined> {
  const dir = await mkdtemp(path.join(tmpdir(), "mr-tmpfs-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeBytes}`, "tmpfs", dir], { stdio: "ignore" });
    return dir;
  } catch {
    await rm(dir, { recursive: true, force: true });
    return undefined;
  }
}

async function unmount(dir: string): Promise<void> {
  execFileSync("umount", [dir], { stdio: "ignore" });
  await rm(dir, { recursive: true, force: true });
}

const canMount = process.getuid?.() === 0;

describe("disk faults on archived writes", { skip: canMount ? false : "needs root to mount a tmpfs" }, () => {
  test("disk full: RESOURCE_EXHAUSTED with the cause, no partial version, everything else keeps working", async (t) => {
    const dir = await mountTmpfs(1024 * 1024);
    assert.ok(dir, "mounting a tmpfs failed although running as root");
    t.after(() => unmount(dir));
    const server = await startTestServer({ archiveDir: path.join(dir, "archive") });
    t.after(() => server.stop());
    const { client } = server;
    await client.createModel("full");
    const kept = await client.publish("full", Buffer.alloc(1000, 1), { archived: true });
    await assert.rejects(client.publish("full", Buffer.alloc(2 * 1024 * 1024, 2), { archived: true }), (error: { code: number; details: string }) => {
      assert.equal(error.code, status.RESOURCE_EXHAUSTED);
      assert.match(error.details, /^no space left on the archive device: ENOSPC/);
      return true;
    });
    const files = (await readdir(path.join(dir, "archive", "full"))).filter((name) => !name.startsWith(".cogment-ts-"));
    assert.deepEqual(files.sort(), ["full-v000001.data", "full-v000001.yaml", "full.yaml"], "no temp or partial file stays");
    const transient = await client.publish("full", Buffer.alloc(2 * 1024 * 1024, 3));
    assert.equal(transient.version_number, 2, "the failed upload left no gap");
    const infos = await client.retrieveVersionInfos({ model_id: "full" });
    assert.deepEqual(infos.version_infos.map((v) => v.version_number), [1, 2]);
    assert.ok((await client.retrieveData("full", 1)).equals(Buffer.alloc(1000, 1)));
    assert.equal(kept.version_number, 1);
  });

  test("read-only archive: PERMISSION_DENIED, reads keep working", async (t) => {
    const dir = await mountTmpfs(4 * 1024 * 1024);
    assert.ok(dir, "mounting a tmpfs failed although running as root");
    t.after(() => unmount(dir));
    const server = await startTestServer({ archiveDir: path.join(dir, "archive") });
    t.after(() => server.stop());
    const { client } = server;
    await client.createModel("ro");
    await client.publish("ro", Buffer.from("before"), { archived: true });
    execFileSync("mount", ["-o", "remount,ro", dir]);
    await assert.rejects(client.publish("ro", Buffer.from("after"), { archived: true }), (error: { code: number; details: string }) => {
      assert.equal(error.code, status.PERMISSION_DENIED);
      assert.match(error.details, /^the archive directory is on a read-only file system: EROFS/);
      return true;
    });
    await assert.rejects(client.createModel("ro-new"), { code: status.PERMISSION_DENIED });
    assert.equal((await client.retrieveData("ro", 1)).toString(), "before");
    const infos = await client.retrieveVersionInfos({ model_id: "ro" });
    assert.deepEqual(infos.version_infos.map((v) => v.version_number), [1]);
  });
});
