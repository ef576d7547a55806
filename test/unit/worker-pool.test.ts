import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type TestContext, describe, test } from "node:test";
import { exposeGc } from "../../src/expose-gc.js";
import { EncodedVersionData, SHA256_IMPLEMENTATIONS } from "../../src/data/index.js";
import { INLINE_HASH_MAX_BYTES, type WorkerPool, createWorkerPool } from "../../src/worker-pool/index.js";
import { startTestServer } from "../support/test-server.js";

/** A real pool and a temporary directory, both gone when the test ends. */
async function poolWithTempDir(t: TestContext, maxThreads: number): Promise<{ pool: WorkerPool; dir: string }> {
  const pool = createWorkerPool({ sha256: "node-crypto", maxThreads });
  const dir = await mkdtemp(path.join(tmpdir(), "mr-pool-"));
  t.after(async () => {
    await pool.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { pool, dir };
}

describe("worker pool", () => {
  for (const implementation of SHA256_IMPLEMENTATIONS) {
    test(`hashes shared segments with ${implementation}`, async (t) => {
      const pool = createWorkerPool({ sha256: implementation, maxThreads: 2 });
      t.after(() => pool.close());
      const data = Buffer.alloc(3_000_000);
      for (let i = 0; i < data.length; i++) data[i] = i % 253;
      const encoded = EncodedVersionData.allocate(data.length, 1_000_000);
      encoded.write(0, data);
      const expected = createHash("sha256").update(data).digest("base64");
      assert.equal(await pool.hash(encoded.dataSegments()), expected);
      assert.equal(await pool.hash([]), createHash("sha256").digest("base64"));
      // Shared, not transferred: the main thread's views are intact after the task.
      assert.equal(encoded.bytes.byteLength, encoded.layout.totalBytes);
      assert.ok(encoded.toContiguous().equals(data));
    });
  }

  test("workers let go of the shared memory they hashed: 512 MiB of versions do not stay resident", async (t) => {
    const gc = exposeGc();
    const pool = createWorkerPool({ sha256: "node-crypto", maxThreads: 2 });
    t.after(() => pool.close());
    await pool.hash([Buffer.alloc(1)]);
    gc();
    const before = process.memoryUsage.rss();
    const MiB = 1024 * 1024;
    for (let i = 0; i < 32; i++) {
      const version = EncodedVersionData.allocate(16 * MiB, 2 * MiB);
      version.write(0, Buffer.alloc(16 * MiB, i)); // touch every page
      await pool.hash(version.dataSegments());
    }
    gc();
    const grown = process.memoryUsage.rss() - before;
    // Without the workers' own collections, all 512 MiB stayed resident (views held by idle workers).
    assert.ok(grown < 256 * MiB, `RSS grew by ${Math.round(grown / MiB)} MiB after hashing 32 versions of 16 MiB`);
  });

  test("writes version files atomically from shared memory and reports errors with their code", async (t) => {
    const { pool, dir } = await poolWithTempDir(t, 2);
    const encoded = EncodedVersionData.allocate(10, 4);
    encoded.write(0, Buffer.from("0123456789"));
    await pool.fileWriter.writeVersionFilesAtomic({
      dataPath: path.join(dir, "m-v000001.data"),
      dataChunks: encoded.dataSegments(),
      infoPath: path.join(dir, "m-v000001.yaml"),
      infoText: "info\n",
    });
    assert.equal(await readFile(path.join(dir, "m-v000001.data"), "utf8"), "0123456789");
    assert.equal(await readFile(path.join(dir, "m-v000001.yaml"), "utf8"), "info\n");
    await assert.rejects(pool.fileWriter.writeFileAtomic(path.join(dir, "missing-dir", "x.yaml"), "x"), { code: "ENOENT" });
    assert.deepEqual((await readdir(dir)).sort(), ["m-v000001.data", "m-v000001.yaml"]);
  });
});

describe("small hashes on the calling thread", () => {
  for (const implementation of SHA256_IMPLEMENTATIONS) {
    test(`give the workers' result, in place up to the crossover and on the workers past it (${implementation})`, async (t) => {
      const pool = createWorkerPool({ sha256: implementation, maxThreads: 2 });
      const workersOnly = createWorkerPool({ sha256: implementation, maxThreads: 2, inlineHashMaxBytes: 0 });
      t.after(() => Promise.all([pool.close(), workersOnly.close()]));
      // The first hash asks for the in-place hasher and goes to the workers meanwhile.
      assert.equal(await pool.hash([Buffer.from("abc")]), createHash("sha256").update("abc").digest("base64"));
      // hash-wasm compiles its instance asynchronously: until then small hashes go to the workers too.
      for (let attempt = 0; attempt < 500; attempt++) {
        const completed = pool.stats().completed;
        await pool.hash([Buffer.from("abc")]);
        if (pool.stats().completed === completed) {
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const crossover = INLINE_HASH_MAX_BYTES[implementation];
      const sizes = [0, 1, 1023, 1024, crossover - 1, crossover, crossover + 1, 3_000_000];
      for (const size of sizes) {
        const data = Buffer.alloc(size);
        for (let i = 0; i < size; i++) data[i] = (i * 31) % 251;
        // Laid out as the server stores it: several segments of a SharedArrayBuffer.
        const encoded = EncodedVersionData.allocate(size, 1000);
        encoded.write(0, data);
        const expected = createHash("sha256").update(data).digest("base64");
        const completedBefore = pool.stats().completed;
        assert.equal(await pool.hash(encoded.dataSegments()), expected, `${size} bytes`);
        assert.equal(await workersOnly.hash(encoded.dataSegments()), expected, `${size} bytes on the workers`);
        const onWorkers = pool.stats().completed - completedBefore;
        assert.equal(onWorkers, size <= crossover ? 0 : 1, `${size} bytes: ${onWorkers} worker task(s)`);
      }
      assert.equal(workersOnly.stats().completed, sizes.length);
    });
  }
});

describe("small files through the pool", () => {
  test("concurrent writes go in group commits; each caller gets its own file's outcome", async (t) => {
    const { pool, dir } = await poolWithTempDir(t, 2);
    const good = Array.from({ length: 12 }, (_, i) => pool.fileWriter.writeFileAtomic(path.join(dir, `model-${i}.yaml`), `model ${i}\n`));
    const bad = pool.fileWriter.writeFileAtomic(path.join(dir, "missing-dir", "x.yaml"), "x");
    await Promise.all(good);
    await assert.rejects(bad, { code: "ENOENT" });
    for (let i = 0; i < 12; i++) {
      assert.equal(await readFile(path.join(dir, `model-${i}.yaml`), "utf8"), `model ${i}\n`);
    }
    const { smallFileWrites } = pool.stats();
    assert.equal(smallFileWrites.calls, 13);
    assert.equal(smallFileWrites.files, 13);
    assert.equal(smallFileWrites.batches, 1, "all asked for in one turn of the event loop: one batch");
  });
});

describe("queueing", () => {
  test("a small metadata write runs before hashes queued ahead of it", async (t) => {
    const { pool, dir } = await poolWithTempDir(t, 1);
    const data = EncodedVersionData.allocate(16 * 1024 * 1024, 2 * 1024 * 1024);
    const finished: string[] = [];
    const hashes = Array.from({ length: 6 }, (_, i) => pool.hash(data.dataSegments()).then(() => finished.push(`hash ${i}`)));
    const write = pool.fileWriter.writeFileAtomic(path.join(dir, "model.yaml"), "model_id: m\n").then(() => finished.push("write"));
    await Promise.all([...hashes, write]);
    assert.equal(await readFile(path.join(dir, "model.yaml"), "utf8"), "model_id: m\n");
    assert.equal(finished.length, 7);
    // One thread: at most the hash already running when the write was queued finishes before it
    // (with piscina's own queue the write came fourth here).
    assert.ok(finished.indexOf("write") <= 1, `completion order: ${finished.join(", ")}`);
  });
});

describe("a worker that dies", () => {
  test("fails only its own task; the pool replaces it and keeps working", async (t) => {
    const pool = createWorkerPool({ sha256: "node-crypto", maxThreads: 2 });
    t.after(() => pool.close());
    const data = EncodedVersionData.allocate(64 * 1024 * 1024, 2 * 1024 * 1024);
    const expected = createHash("sha256").update(data.toContiguous()).digest("base64");
    assert.equal(await pool.hash(data.dataSegments()), expected, "warm-up");
    const running = pool.hash(data.dataSegments());
    await new Promise((resolve) => setTimeout(resolve, 5));
    const victims = [...pool.threads()];
    assert.ok(victims.length >= 1);
    await Promise.all(victims.map((worker) => worker.terminate()));
    const outcome = await running.then(
      (hash) => ({ hash }),
      (error: unknown) => ({ error }),
    );
    if ("error" in outcome) {
      assert.ok(outcome.error instanceof Error);
    } else {
      assert.equal(outcome.hash, expected, "a task that finished before the worker died is still right");
    }
    assert.equal(await pool.hash(data.dataSegments()), expected, "a new worker took over");
  });
});

describe("starting the threads (issue #15: none on the way to the first served call)", () => {
  test("no thread before start() or a first task; start() starts them; a task waits for them", async (t) => {
    const pool = createWorkerPool({ sha256: "node-crypto", maxThreads: 2 });
    t.after(() => pool.close());
    assert.equal(pool.threads().length, 0);
    assert.deepEqual(pool.stats(), {
      threads: 0,
      queueSize: 0,
      completed: 0,
      utilization: 0,
      smallFileWrites: { batches: 0, files: 0, calls: 0 },
    });
    pool.start();
    pool.start();
    assert.equal(pool.threads().length, 1, "minThreads, once");
    assert.equal(await pool.hash([Buffer.from("abc")]), createHash("sha256").update("abc").digest("base64"));
    assert.equal(pool.stats().completed, 1);
  });

  test("a first task starts them by itself", async (t) => {
    const pool = createWorkerPool({ sha256: "node-crypto", maxThreads: 2 });
    t.after(() => pool.close());
    assert.equal(await pool.hash([Buffer.from("abc")]), createHash("sha256").update("abc").digest("base64"));
    assert.ok(pool.threads().length >= 1);
  });

  test("the server listens before its threads start, and starts them a moment later by itself", async (t) => {
    const { server, close } = await startTestServer();
    t.after(close);
    assert.equal(server.workerPool.threads().length, 0, "none when startServer resolves");
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(server.workerPool.threads().length, 0, "none on the next turn either: a first call comes first");
    // No call: the deferred start (DEFERRED_START_MS) starts them; waited for without timing it.
    for (let waited = 0; server.workerPool.threads().length === 0 && waited < 30_000; waited += 10) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(server.workerPool.threads().length, 1);
  });

  test("the server starts no hash lane thread until a stream needs one: the first streamed archived upload does", async (t) => {
    // A 1 MiB budget: an archived version of over a quarter of it streams to the archive (hashed on a lane).
    const { server, client, close } = await startTestServer({ cacheMaxBytes: 1024 * 1024 });
    t.after(close);
    // After the deferred start (the pool's first thread is its sign), still no hash lane.
    for (let waited = 0; server.workerPool.threads().length === 0 && waited < 30_000; waited += 10) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(server.workerPool.threads().length, 1);
    assert.equal(server.hashLanes.threads().length, 0, "no lane after the deferred start");
    await client.createModel("lazy-lanes");
    const data = Buffer.alloc(64 * 1024, 7);
    const transient = await client.publish("lazy-lanes", data);
    assert.equal(transient.data_hash, createHash("sha256").update(data).digest("base64"));
    assert.equal(server.hashLanes.threads().length, 0, "a transient version needs none");
    const large = Buffer.alloc(512 * 1024, 9);
    const archived = await client.publish("lazy-lanes", large, { archived: true });
    assert.equal(archived.data_hash, createHash("sha256").update(large).digest("base64"));
    assert.equal(server.hashLanes.threads().length, 1, "the archived upload started one");
  });

  test("once closed, start() starts nothing and tasks fail", async () => {
    const pool = createWorkerPool({ sha256: "node-crypto", maxThreads: 2 });
    await pool.close();
    pool.start();
    assert.equal(pool.threads().length, 0);
    await assert.rejects(pool.hash([Buffer.from("abc")]), { message: "the worker pool is closed" });
  });
});
