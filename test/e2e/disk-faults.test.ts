import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { RegistryClient } from "../support/registry-client.js";
import { type ServerProcess, killAllServers, spawnServer } from "../support/server-process.js";
import { startTestServer } from "../support/test-server.js";

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

  // Was PERMISSION_DENIED: a read-only archive now gets the code of a full one (see to-service-error.ts).
  test("read-only archive: RESOURCE_EXHAUSTED naming the cause, reads keep working", async (t) => {
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
      assert.equal(error.code, status.RESOURCE_EXHAUSTED);
      assert.match(error.details, /^the archive directory is on a read-only file system: EROFS/);
      return true;
    });
    await assert.rejects(client.createModel("ro-new"), (error: { code: number; details: string }) => {
      assert.equal(error.code, status.RESOURCE_EXHAUSTED);
      assert.match(error.details, /^the archive directory is on a read-only file system: EROFS/);
      return true;
    });
    assert.equal((await client.publish("ro", Buffer.from("transient"))).version_number, 2, "transient uploads keep working");
    assert.equal((await client.retrieveData("ro", 1)).toString(), "before");
    const infos = await client.retrieveVersionInfos({ model_id: "ro" });
    assert.deepEqual(infos.version_infos.map((v) => v.version_number), [1, 2]);
  });
});

/** The warnings a server logged about numbering it could not record. */
const numberingWarnings = (server: ServerProcess): Record<string, unknown>[] =>
  server.logLines.filter((line) => line.level === 40 && /^could not (record|write) the (next version number|version-number mark)/.test(String(line.msg)));

async function fillUp(dir: string): Promise<void> {
  await writeFile(path.join(dir, "filler"), Buffer.alloc(8 * 1024 * 1024)).catch((error: NodeJS.ErrnoException) => {
    assert.equal(error.code, "ENOSPC");
  });
  await assert.rejects(writeFile(path.join(dir, "filler-2"), Buffer.alloc(4096)), { code: "ENOSPC" }, "the file system is full");
}

describe("the memory path after a restart on an archive that cannot take writes", { skip: canMount ? false : "needs root to mount a tmpfs" }, () => {
  after(killAllServers);

  for (const fault of ["read-only", "full"] as const) {
    test(`${fault} archive: transient uploads keep working and are numbered on; the log says once what could not be recorded`, async (t) => {
      const dir = await mountTmpfs(2 * 1024 * 1024);
      assert.ok(dir, "mounting a tmpfs failed although running as root");
      t.after(() => unmount(dir));
      const env = { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: path.join(dir, "archive") };
      const first = await spawnServer(env);
      t.after(() => first.child.kill("SIGKILL"));
      const firstClient = new RegistryClient(`127.0.0.1:${first.port}`);
      await firstClient.createModel("used");
      await firstClient.publish("used", Buffer.from("archived"), { archived: true });
      await firstClient.publish("used", Buffer.from("transient"));
      // A model without versions yet: its first commit writes both number files.
      await firstClient.createModel("fresh");
      firstClient.close();
      first.child.kill("SIGTERM");
      assert.equal(await first.exited, 0);
      if (fault === "read-only") {
        execFileSync("mount", ["-o", "remount,ro", dir]);
      } else {
        await fillUp(dir);
      }

      const second = await spawnServer(env);
      t.after(() => second.child.kill("SIGKILL"));
      const client = new RegistryClient(`127.0.0.1:${second.port}`);
      t.after(() => client.close());
      const cause = fault === "read-only" ? /^the archive directory is on a read-only file system: EROFS/ : /^no space left on the archive device: ENOSPC/;
      await assert.rejects(client.publish("used", Buffer.alloc(64 * 1024, 7), { archived: true }), (error: { code: number; details: string }) => {
        assert.equal(error.code, status.RESOURCE_EXHAUSTED);
        assert.match(error.details, cause);
        return true;
      });
      for (const expected of [3, 4, 5]) {
        assert.equal((await client.publish("used", Buffer.from(`t${expected}`))).version_number, expected);
      }
      for (const expected of [1, 2]) {
        assert.equal((await client.publish("fresh", Buffer.from(`f${expected}`))).version_number, expected);
      }
      assert.equal((await client.retrieveData("used", 1)).toString(), "archived");
      assert.equal((await client.retrieveData("fresh", -1)).toString(), "f2");

      const errno = fault === "read-only" ? "EROFS" : "ENOSPC";
      const warnings = numberingWarnings(second).map((line) => [line.modelId, line.file, line.errno]);
      // "used" resumes below its durable mark (written a block ahead before the fault): only its exact record fails.
      const expectedWarnings = [
        ["fresh", ".cogment-ts-next-version", errno],
        ["fresh", ".cogment-ts-version-record", errno],
        ["used", ".cogment-ts-version-record", errno],
      ];
      if (fault === "full") {
        // Overwriting the existing record in place needs no new block: only the new model's files fail.
        expectedWarnings.splice(2, 1);
      }
      assert.deepEqual(warnings.sort(), expectedWarnings);
      for (const line of numberingWarnings(second)) {
        assert.match(String(line.error), new RegExp(`^${errno}: `));
      }
      client.close();
      second.child.kill("SIGTERM");
      assert.equal(await second.exited, 0);
      assert.equal(numberingWarnings(second).length, expectedWarnings.length, "logged once per model and file, the stop included");
    });
  }
});
