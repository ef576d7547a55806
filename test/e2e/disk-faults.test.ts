import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { after, describe, test, type TestContext } from "node:test";
import { status } from "@grpc/grpc-js";
import { RegistryClient } from "../support/registry-client.js";
import { type ServerProcess, killAllServers, spawnServer } from "../support/server-process.js";
import { startTestServer } from "../support/test-server.js";

const run = promisify(execFile);

/** A bound on each clean-up step and on each wait for a server's exit: none may hang the suite. */
const STEP_BOUND_MS = 30_000;

/** `step`'s outcome, or an error once `ms` passed (the step may go on in the background). */
async function bounded<T>(step: Promise<T>, what: string, ms = STEP_BOUND_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still not done after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([step, late]);
  } finally {
    clearTimeout(timer);
  }
}

interface Tmpfs {
  readonly dir: string;
  /** Registers a clean-up step (a server's stop) that runs before the unmount, last registered first. */
  beforeUnmount(step: () => unknown): void;
}

/**
 * A small tmpfs gives real ENOSPC and EROFS errors; mounting needs root (CI runs as root). After the
 * test, every `beforeUnmount` step runs (each bounded, all of them even if one fails), then the tmpfs
 * is unmounted in any case: lazily if a process still holds it, so no mount outlives the test.
 */
async function mountTmpfs(t: TestContext, sizeBytes: number): Promise<Tmpfs> {
  const dir = await mkdtemp(path.join(tmpdir(), "mr-tmpfs-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeBytes}`, "tmpfs", dir], { stdio: "ignore", timeout: STEP_BOUND_MS });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    assert.fail(`mounting a tmpfs failed although running as root: ${String(error)}`);
  }
  const steps: (() => unknown)[] = [];
  t.after(async () => {
    const failures: unknown[] = [];
    for (const step of steps.reverse()) {
      await bounded(Promise.resolve().then(step), "a clean-up step before the unmount").catch((error: unknown) => failures.push(error));
    }
    await unmount(dir);
    if (failures.length > 0) {
      throw new AggregateError(failures, "clean-up before the unmount failed (the tmpfs is unmounted)");
    }
  });
  return { dir, beforeUnmount: (step) => steps.push(step) };
}

/** Unmounts `dir` (a few tries while a killed process lets go of it, then a lazy unmount) and removes it. */
async function unmount(dir: string): Promise<void> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      await run("umount", [dir], { timeout: STEP_BOUND_MS });
      await rm(dir, { recursive: true, force: true });
      return;
    } catch (error) {
      lastError = error;
      await sleep(100);
    }
  }
  await run("umount", ["--lazy", dir], { timeout: STEP_BOUND_MS });
  await rm(dir, { recursive: true, force: true });
  throw new Error(`${dir} was still busy after 20 tries to unmount it (detached lazily): ${String(lastError)}`);
}

/** The server's exit code once it ended; SIGKILLed (and so failing an exit-code check) if it did not end within the bound. */
async function exitOf(server: ServerProcess): Promise<number | string> {
  try {
    return await bounded(server.exited, "the server's stop");
  } catch (error) {
    server.child.kill("SIGKILL");
    await server.exited;
    return `still running ${STEP_BOUND_MS} ms after SIGTERM: ${String(error)}`;
  }
}

/** SIGKILLs the server if it still runs and waits until it is gone (it holds files on the tmpfs). */
async function killed(server: ServerProcess): Promise<void> {
  server.child.kill("SIGKILL");
  await server.exited;
}

const canMount = process.getuid?.() === 0;

describe("disk faults on archived writes", { skip: canMount ? false : "needs root to mount a tmpfs" }, () => {
  test("disk full: RESOURCE_EXHAUSTED with the cause, no partial version, everything else keeps working", async (t) => {
    const { dir, beforeUnmount } = await mountTmpfs(t, 1024 * 1024);
    const server = await startTestServer({ archiveDir: path.join(dir, "archive") });
    beforeUnmount(() => server.stop());
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
    const { dir, beforeUnmount } = await mountTmpfs(t, 4 * 1024 * 1024);
    const server = await startTestServer({ archiveDir: path.join(dir, "archive") });
    beforeUnmount(() => server.stop());
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
      const { dir, beforeUnmount } = await mountTmpfs(t, 2 * 1024 * 1024);
      const env = { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: path.join(dir, "archive") };
      const first = await spawnServer(env);
      beforeUnmount(() => killed(first));
      const firstClient = new RegistryClient(`127.0.0.1:${first.port}`);
      await firstClient.createModel("used");
      await firstClient.publish("used", Buffer.from("archived"), { archived: true });
      await firstClient.publish("used", Buffer.from("transient"));
      // A model without versions yet: its first commit writes both number files.
      await firstClient.createModel("fresh");
      firstClient.close();
      first.child.kill("SIGTERM");
      assert.equal(await exitOf(first), 0);
      if (fault === "read-only") {
        execFileSync("mount", ["-o", "remount,ro", dir]);
      } else {
        await fillUp(dir);
      }

      const second = await spawnServer(env);
      beforeUnmount(() => killed(second));
      const client = new RegistryClient(`127.0.0.1:${second.port}`);
      beforeUnmount(() => client.close());
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
      // The warnings come through the server's stdout, maybe after the replies: wait for them (bounded).
      for (const deadline = Date.now() + STEP_BOUND_MS; numberingWarnings(second).length < expectedWarnings.length && Date.now() < deadline; ) {
        await sleep(20);
      }
      const warnings = numberingWarnings(second).map((line) => [line.modelId, line.file, line.errno]);
      assert.deepEqual(warnings.sort(), expectedWarnings);
      for (const line of numberingWarnings(second)) {
        assert.match(String(line.error), new RegExp(`^${errno}: `));
      }
      client.close();
      second.child.kill("SIGTERM");
      assert.equal(await exitOf(second), 0);
      assert.equal(numberingWarnings(second).length, expectedWarnings.length, "logged once per model and file, the stop included");
    });
  }
});
