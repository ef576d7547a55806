/*
 * The contract every archive backend keeps, run against the directory and against an S3 bucket (a
 * real S3-protocol server on a loopback port: test/support/s3-test-server.ts). Each backend also
 * gives raw access to what it stored, by name relative to the archive root, so the tests can check
 * the layout byte for byte and plant incomplete versions.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { type ArchiveStore, isNumberSpent, type PlacementFence } from "../../src/archive/archive-store.js";
import { inlineFileWriter } from "../../src/archive/atomic-write.js";
import { createFsArchiveStore } from "../../src/archive/fs-archive-store.js";
import { createS3ArchiveStore } from "../../src/archive/s3-archive-store.js";
import { encodeModelInfo, encodeVersionInfo } from "../../src/archive/yaml-codec.js";
import { Code, RegistryError } from "../../src/errors/index.js";
import type { VersionRecord } from "../../src/domain/index.js";
import { killAllS3TestServers, type S3TestServer, startS3TestServer } from "../support/s3-test-server.js";

interface Warning {
  readonly message: string;
  readonly details: Record<string, unknown>;
}

interface Backend {
  readonly name: string;
  /** A fresh, empty archive; `warnings` collects what its store reports. */
  create(): Promise<Archive>;
}

interface Archive {
  readonly store: ArchiveStore;
  readonly warnings: Warning[];
  /** Every stored name below the archive root (`m/m-v000001.data`), sorted. */
  listRaw(): Promise<string[]>;
  readRaw(name: string): Promise<Buffer>;
  writeRaw(name: string, content: string | Uint8Array): Promise<void>;
  deleteRaw(name: string): Promise<void>;
  /** Multipart uploads or temp files still pending (0 once nothing is left behind). */
  pendingUploads(): Promise<number>;
}

const MiB = 1024 * 1024;
const tempDirs: string[] = [];

const directoryBackend: Backend = {
  name: "directory",
  async create() {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), "mr-contract-"));
    tempDirs.push(root);
    const warnings: Warning[] = [];
    const store = createFsArchiveStore({ root, writer: inlineFileWriter, onWarning: (message, details) => warnings.push({ message, details }) });
    await store.open();
    const listRaw = async (): Promise<string[]> => {
      const entries = await fs.readdir(root, { recursive: true, withFileTypes: true });
      return entries
        .filter((entry) => entry.isFile())
        .map((entry) => path.relative(root, path.join(entry.parentPath, entry.name)))
        .sort();
    };
    return {
      store,
      warnings,
      listRaw,
      readRaw: (name) => fs.readFile(path.join(root, name)),
      async writeRaw(name, content) {
        await fs.mkdir(path.dirname(path.join(root, name)), { recursive: true });
        await fs.writeFile(path.join(root, name), content);
      },
      deleteRaw: (name) => fs.rm(path.join(root, name), { force: true }),
      pendingUploads: async () => (await listRaw()).filter((name) => path.basename(name).includes(".tmp-")).length,
    };
  },
};

function s3Backend(server: () => S3TestServer, client: () => S3Client): Backend {
  let count = 0;
  return {
    name: "s3",
    async create() {
      const bucket = "contract";
      const prefix = `team archive/run-${++count}/`;
      const warnings: Warning[] = [];
      const store = createS3ArchiveStore({
        client: client(),
        location: { bucket, prefix },
        onWarning: (message, details) => warnings.push({ message, details }),
      });
      await store.open();
      await client().send(new DeleteObjectCommand({ Bucket: bucket, Key: `${prefix}.cogment-ts-write-check` }));
      return {
        store,
        warnings,
        async listRaw() {
          const names: string[] = [];
          let token: string | undefined;
          do {
            const page = await client().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
            names.push(...(page.Contents ?? []).map((o) => (o.Key ?? "").slice(prefix.length)));
            token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
          } while (token !== undefined);
          return names.sort();
        },
        async readRaw(name) {
          const reply = await client().send(new GetObjectCommand({ Bucket: bucket, Key: prefix + name }));
          return Buffer.from(await (reply.Body as NonNullable<typeof reply.Body>).transformToByteArray());
        },
        async writeRaw(name, content) {
          await client().send(new PutObjectCommand({ Bucket: bucket, Key: prefix + name, Body: typeof content === "string" ? Buffer.from(content) : content }));
        },
        async deleteRaw(name) {
          await client().send(new DeleteObjectCommand({ Bucket: bucket, Key: prefix + name }));
        },
        async pendingUploads() {
          // s3rver keeps each multipart upload in progress as a directory here.
          const uploads = path.join(server().directory, bucket, "._S3rver_uploads");
          return (await fs.readdir(uploads).catch(() => [])).length;
        },
      };
    },
  };
}

function version(modelId: string, versionNumber: number, data: Uint8Array, userData: Record<string, string> = {}): VersionRecord {
  return {
    modelId,
    versionNumber,
    creationTimestamp: 1_700_000_000_123_456_789n + BigInt(versionNumber),
    archived: true,
    dataHash: `hash-${versionNumber}`,
    dataSize: data.byteLength,
    userData,
  };
}

async function readAt(store: ArchiveStore, modelId: string, versionNumber: number, position: number, length: number): Promise<Buffer> {
  const reader = await store.openVersionData(modelId, versionNumber);
  try {
    const target = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      const count = await reader.read(target.subarray(filled), position + filled);
      if (count === 0) {
        break;
      }
      filled += count;
    }
    return Buffer.from(target.subarray(0, filled));
  } finally {
    await reader.close();
  }
}

async function registryCode(promise: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof RegistryError, `expected a RegistryError, got ${String(error)}`);
    return { code: error.code, message: error.message };
  }
  assert.fail("expected a failure");
}

let s3: S3TestServer | undefined;
let s3Client: S3Client | undefined;
before(async () => {
  s3 = await startS3TestServer(["contract"]);
  s3Client = s3.client();
});
after(async () => {
  s3Client?.destroy();
  await s3?.close();
  killAllS3TestServers();
  await Promise.all(tempDirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
});

/** An object of the contract bucket, as stored. */
async function readRawObject(key: string): Promise<Buffer> {
  const reply = await (s3Client as S3Client).send(new GetObjectCommand({ Bucket: "contract", Key: key }));
  return Buffer.from(await (reply.Body as NonNullable<typeof reply.Body>).transformToByteArray());
}

const backends: Backend[] = [
  directoryBackend,
  s3Backend(
    () => s3 as S3TestServer,
    () => s3Client as S3Client,
  ),
];

for (const backend of backends) {
  describe(`archive store contract: ${backend.name}`, () => {
    test("writes, reads, lists (sorted) and deletes models; a folder without its model info is no model", async () => {
      const archive = await backend.create();
      const { store } = archive;
      const ids = ["b", "a", "a b", "ünï:côdé@x", "a-b"];
      for (const id of ids) {
        await store.writeModel({ modelId: id, userData: { owner: id, step: "1000" } });
      }
      await archive.writeRaw("orphan/orphan-v000001.data", "x");
      assert.deepEqual(await store.listModelIds(), [...ids].sort());
      assert.deepEqual(await store.readModel("ünï:côdé@x"), { modelId: "ünï:côdé@x", userData: { owner: "ünï:côdé@x", step: "1000" } });
      assert.equal((await archive.readRaw("a b/a b.yaml")).toString(), encodeModelInfo({ modelId: "a b", userData: { owner: "a b", step: "1000" } }));
      assert.equal(await store.readModel("missing"), undefined);
      await store.putVersion(version("a", 1, Buffer.from("data")), [Buffer.from("data")]);
      await store.writeMeta("a", "next-version", "7");
      await store.deleteModel("a");
      await store.deleteModel("never-existed");
      assert.deepEqual(await store.listModelIds(), ["a b", "a-b", "b", "ünï:côdé@x"]);
      assert.deepEqual((await archive.listRaw()).filter((name) => name.startsWith("a/")), []);
      assert.deepEqual(await store.listVersions("a"), []);
    });

    test("putVersion stores the original layout byte for byte; listVersions gives increasing numbers", async () => {
      const archive = await backend.create();
      const { store } = archive;
      await store.writeModel({ modelId: "m", userData: {} });
      const data2 = randomBytes(1000);
      const data1 = randomBytes(10);
      const v2 = version("m", 2, data2, { note: "yes" });
      const v1 = version("m", 1, data1);
      await store.putVersion(v2, [data2.subarray(0, 300), data2.subarray(300)]);
      await store.putVersion(v1, [data1]);
      await store.putVersion(version("m", 3, Buffer.alloc(0)), []);
      assert.deepEqual(await archive.listRaw(), ["m/m-v000001.data", "m/m-v000001.yaml", "m/m-v000002.data", "m/m-v000002.yaml", "m/m-v000003.data", "m/m-v000003.yaml", "m/m.yaml"]);
      assert.equal((await archive.readRaw("m/m-v000002.yaml")).toString(), encodeVersionInfo(v2));
      assert.deepEqual(await archive.readRaw("m/m-v000002.data"), data2);
      assert.deepEqual(await store.listVersions("m"), [v1, v2, version("m", 3, Buffer.alloc(0))]);
      await assert.rejects(store.putVersion(version("m", 4, Buffer.alloc(5)), [Buffer.alloc(4)]), /data is 4 bytes, data_size is 5/);
    });

    test("openVersionData reads any range, 0 at the end; NOT_FOUND without data", async () => {
      const archive = await backend.create();
      const { store } = archive;
      const data = randomBytes(3 * MiB + 17);
      await store.putVersion(version("r", 1, data), [data]);
      assert.deepEqual(await readAt(store, "r", 1, 0, data.length), data);
      assert.deepEqual(await readAt(store, "r", 1, 2 * MiB + 5, 1000), data.subarray(2 * MiB + 5, 2 * MiB + 1005));
      assert.deepEqual(await readAt(store, "r", 1, data.length - 7, 100), data.subarray(data.length - 7));
      const reader = await store.openVersionData("r", 1);
      try {
        assert.equal(reader.size, data.length);
        const target = new Uint8Array(10);
        assert.equal(await reader.read(target, data.length), 0);
        // Out of order: a later range, then back to the start.
        assert.equal(await reader.read(target, 500), 10);
        assert.deepEqual(Buffer.from(target), data.subarray(500, 510));
        assert.equal(await reader.read(target, 0), 10);
        assert.deepEqual(Buffer.from(target), data.subarray(0, 10));
      } finally {
        await reader.close();
      }
      assert.equal((await registryCode(store.openVersionData("r", 2))).code, Code.NOT_FOUND);
    });

    test("beginVersionData: appended data (buffers reused by the caller) is committed whole, nothing else left", async () => {
      const archive = await backend.create();
      const { store } = archive;
      const data = randomBytes(20 * MiB + 3);
      const stream = await store.beginVersionData("s");
      const reused = new Uint8Array(MiB);
      for (let position = 0; position < data.length; position += reused.length) {
        const piece = data.subarray(position, position + reused.length);
        reused.set(piece);
        await stream.append([reused.subarray(0, piece.length)]);
        reused.fill(0xee);
      }
      const v = version("s", 1, data);
      await stream.commit(v);
      assert.deepEqual(await store.listVersions("s"), [v]);
      assert.deepEqual(await archive.listRaw(), ["s/s-v000001.data", "s/s-v000001.yaml"]);
      assert.deepEqual(await readAt(store, "s", 1, 0, data.length), data);
      assert.equal(await archive.pendingUploads(), 0);
    });

    test("beginVersionData: an empty version commits; abort leaves nothing listed and nothing pending", async () => {
      const archive = await backend.create();
      const { store } = archive;
      const empty = await store.beginVersionData("e");
      await empty.commit(version("e", 1, Buffer.alloc(0)));
      assert.deepEqual(await store.listVersions("e"), [version("e", 1, Buffer.alloc(0))]);

      const cancelled = await store.beginVersionData("e");
      await cancelled.append([randomBytes(9 * MiB)]);
      await cancelled.append([randomBytes(9 * MiB)]);
      await cancelled.abort();
      const wrongSize = await store.beginVersionData("e");
      await wrongSize.append([randomBytes(100)]);
      await assert.rejects(wrongSize.commit(version("e", 2, Buffer.alloc(101))), /streamed 100 bytes for a version whose data_size is 101/);
      await wrongSize.abort();
      assert.deepEqual(await store.listVersions("e"), [version("e", 1, Buffer.alloc(0))]);
      assert.deepEqual(await archive.listRaw(), ["e/e-v000001.data", "e/e-v000001.yaml"]);
      assert.equal(await archive.pendingUploads(), 0);
    });

    test("skips incomplete or inconsistent versions with a warning each", async () => {
      const archive = await backend.create();
      const { store } = archive;
      const good = version("k", 5, Buffer.from("12345"));
      await archive.writeRaw("k/k-v000001.data", "orphan data");
      await archive.writeRaw("k/k-v000002.yaml", encodeVersionInfo(version("k", 2, Buffer.from("ab"))));
      await archive.writeRaw("k/k-v000003.yaml", encodeVersionInfo(version("k", 3, Buffer.from("abc"))));
      await archive.writeRaw("k/k-v000003.data", "abcd");
      await archive.writeRaw("k/k-v000004.yaml", "model_id: [unclosed");
      await archive.writeRaw("k/k-v000004.data", "x");
      await archive.writeRaw("k/k-v1.data", "not canonical");
      await store.putVersion(good, [Buffer.from("12345")]);
      assert.deepEqual(await store.listVersions("k"), [good]);
      assert.deepEqual(
        archive.warnings.map((w) => [w.message, w.details.versionNumber]),
        [
          ["archived version skipped: data file without version info", 1],
          ["archived version skipped: version info without data file", 2],
          ["archived version skipped: data file size differs from data_size", 3],
          ["archived version skipped: unreadable version info", 4],
        ],
      );
    });

    test("with a fence (several instances), a version is listed only once markCommitted recorded its commit; a mark naming another info hides nothing", async () => {
      const archive = await backend.create();
      const { store } = archive;
      const fence: PlacementFence = { confirm: async () => undefined };
      const one = Buffer.from("one");
      const two = Buffer.from("two, streamed");
      await store.putVersion(version("p", 1, one), [one], fence);
      const stream = await store.beginVersionData("p");
      await stream.append([two]);
      await stream.commit(version("p", 2, two), fence);
      assert.deepEqual(await archive.listRaw(), [
        "p/.cogment-ts-pending-v000001",
        "p/.cogment-ts-pending-v000002",
        "p/p-v000001.data",
        "p/p-v000001.yaml",
        "p/p-v000002.data",
        "p/p-v000002.yaml",
      ]);
      assert.equal((await archive.readRaw("p/.cogment-ts-pending-v000001")).toString(), encodeVersionInfo(version("p", 1, one)));
      // Not committed yet (or never: its writer died before its commit script).
      assert.deepEqual(await store.listVersions("p"), []);
      await store.markCommitted?.("p", 2);
      await store.markCommitted?.("p", 7); // no mark: nothing to do
      assert.deepEqual(await store.listVersions("p"), [version("p", 2, two)]);
      // Number 1 written again by a writer that leaves no mark (single mode, the original server): another info.
      const again = Buffer.from("again");
      await store.deleteVersion("p", 1);
      await store.putVersion(version("p", 1, again), [again]);
      assert.deepEqual(await store.listVersions("p"), [version("p", 1, again), version("p", 2, two)]);
      assert.deepEqual(await archive.listRaw(), ["p/.cogment-ts-pending-v000001", "p/p-v000001.data", "p/p-v000001.yaml", "p/p-v000002.data", "p/p-v000002.yaml"]);
      const skipped = "archived version skipped: its commit did not complete (an instance stopped between putting its files in place and committing it)";
      assert.deepEqual(
        archive.warnings.map((w) => [w.message, w.details.versionNumber]),
        [
          [skipped, 1],
          [skipped, 2],
          [skipped, 1], // the second listing
        ],
      );
      assert.equal(await archive.pendingUploads(), 0);
    });

    test("deleteVersion removes info and data; no error if missing", async () => {
      const archive = await backend.create();
      const { store } = archive;
      await store.putVersion(version("d", 1, Buffer.from("a")), [Buffer.from("a")]);
      await store.putVersion(version("d", 2, Buffer.from("b")), [Buffer.from("b")]);
      await store.deleteVersion("d", 1);
      await store.deleteVersion("d", 9);
      assert.deepEqual(await archive.listRaw(), ["d/d-v000002.data", "d/d-v000002.yaml"]);
      assert.deepEqual((await store.listVersions("d")).map((v) => v.versionNumber), [2]);
    });

    test("meta values are dotfiles of the model that disturb nothing", async () => {
      const archive = await backend.create();
      const { store } = archive;
      assert.equal(await store.readMeta("n", "next-version"), undefined);
      await store.writeMeta("n", "next-version", "42");
      await store.writeMeta("n", "next-version", "43");
      assert.equal(await store.readMeta("n", "next-version"), "43");
      assert.deepEqual(await archive.listRaw(), ["n/.cogment-ts-next-version"]);
      assert.deepEqual(await store.listModelIds(), []);
      assert.deepEqual(await store.listVersions("n"), []);
      assert.equal(archive.warnings.length, 0);
      await assert.rejects(store.writeMeta("n", "Bad Key", "1"), /invalid archive metadata key/);
    });

    test("archive-wide meta values are dotfiles at the root that disturb nothing", async () => {
      const archive = await backend.create();
      const { store } = archive;
      assert.equal(await store.readArchiveMeta("single-mode-run"), undefined);
      await store.writeArchiveMeta("single-mode-run", "one");
      await store.writeArchiveMeta("single-mode-run", "two\n");
      assert.equal(await store.readArchiveMeta("single-mode-run"), "two\n");
      assert.deepEqual(
        (await archive.listRaw()).filter((name) => name !== ".cogment-ts-write-check"),
        [".cogment-ts-single-mode-run"],
      );
      assert.deepEqual(await store.listModelIds(), []);
      assert.equal(await archive.pendingUploads(), 0);
      assert.equal(archive.warnings.length, 0);
      await assert.rejects(store.writeArchiveMeta("Bad Key", "1"), /invalid archive metadata key/);
    });
  });
}

describe("archive store: S3 only", () => {
  const storeOn = (prefix: string, extra: Partial<Parameters<typeof createS3ArchiveStore>[0]> = {}) => {
    const warnings: Warning[] = [];
    const store = createS3ArchiveStore({ client: s3Client as S3Client, location: { bucket: "contract", prefix }, onWarning: (message, details) => warnings.push({ message, details }), ...extra });
    return { store, warnings };
  };

  test("two writers of one version: the second fails with ALREADY_EXISTS and the first stays whole", async () => {
    const { store } = storeOn("conditional/");
    const first = Buffer.from("first writer");
    await store.putVersion(version("c", 1, first), [first]);
    const second = Buffer.from("second writer!");
    const failure = await registryCode(store.putVersion(version("c", 1, second), [second]));
    assert.equal(failure.code, Code.ALREADY_EXISTS);
    assert.match(failure.message, /^archive bucket "contract": writing conditional\/c\/c-v000001\.data failed: PreconditionFailed/);
    const streamed = await store.beginVersionData("c");
    await streamed.append([second]);
    assert.equal((await registryCode(streamed.commit(version("c", 1, second)))).code, Code.ALREADY_EXISTS);
    assert.equal(await store.putVersion(version("c", 1, second), [second]).catch(isNumberSpent), true, "the number is another writer's: spent");
    assert.deepEqual(await store.listVersions("c"), [version("c", 1, first)]);
    assert.deepEqual(await readAt(store, "c", 1, 0, 100), first);
  });

  test("a data object left without its info (an interrupted commit) is overwritten, with a warning; the info stays conditional", async () => {
    const { store, warnings } = storeOn("leftover-data/");
    const raw = (key: string, body: string) => (s3Client as S3Client).send(new PutObjectCommand({ Bucket: "contract", Key: `leftover-data/${key}`, Body: body }));
    await raw("o/o-v000001.data", "bytes of a commit that never wrote its info");
    await raw("o/o-v000002.data", "more leftover bytes");
    await raw("o/o-v000003.data", "and more");
    const one = Buffer.from("one");
    await store.putVersion(version("o", 1, one), [one]);
    const two = randomBytes(9 * MiB); // a multipart upload: its 412 comes at the completion
    await store.putVersion(version("o", 2, two), [two]);
    const three = Buffer.from("three, streamed");
    const stream = await store.beginVersionData("o");
    await stream.append([three]);
    await stream.commit(version("o", 3, three));
    assert.deepEqual(await store.listVersions("o"), [version("o", 1, one), version("o", 2, two), version("o", 3, three)]);
    assert.deepEqual(await readAt(store, "o", 1, 0, 100), one);
    assert.deepEqual(await readAt(store, "o", 2, 0, two.length), two);
    assert.deepEqual(await readAt(store, "o", 3, 0, 100), three);
    assert.deepEqual(
      warnings.map((w) => [w.message, w.details.key]),
      [1, 2, 3].map((n) => [
        "overwriting a leftover data object: no version info refers to it (a commit interrupted before its info was written)",
        `leftover-data/o/o-v00000${n}.data`,
      ]),
    );
  });

  test("an info already in the store: our own (a lost reply) is a commit done; another's is ALREADY_EXISTS, our data removed, the number spent", async () => {
    const { store } = storeOn("info-taken/");
    const raw = (key: string, body: string) => (s3Client as S3Client).send(new PutObjectCommand({ Bucket: "contract", Key: `info-taken/${key}`, Body: body }));
    const one = Buffer.from("one");
    await raw("i/i-v000001.yaml", encodeVersionInfo(version("i", 1, one)));
    await store.putVersion(version("i", 1, one), [one]);
    assert.deepEqual(await store.listVersions("i"), [version("i", 1, one)]);

    const other = { ...version("i", 2, Buffer.from("other")), dataHash: "another writer's" };
    await raw("i/i-v000002.yaml", encodeVersionInfo(other));
    const two = Buffer.from("two");
    for (const streamed of [false, true]) {
      let failure: unknown;
      try {
        if (streamed) {
          const stream = await store.beginVersionData("i");
          await stream.append([two]);
          await stream.commit(version("i", 2, two));
        } else {
          await store.putVersion(version("i", 2, two), [two]);
        }
      } catch (error) {
        failure = error;
      }
      assert.ok(failure instanceof RegistryError);
      assert.equal(failure.code, Code.ALREADY_EXISTS);
      assert.match(failure.message, /^archive bucket "contract": writing info-taken\/i\/i-v000002\.yaml failed: PreconditionFailed: .*, HTTP 412$/);
      assert.equal(isNumberSpent(failure), true);
    }
    const keys = await (s3Client as S3Client).send(new ListObjectsV2Command({ Bucket: "contract", Prefix: "info-taken/" }));
    assert.deepEqual((keys.Contents ?? []).map((o) => o.Key).sort(), ["info-taken/i/i-v000001.data", "info-taken/i/i-v000001.yaml", "info-taken/i/i-v000002.yaml"]);
  });

  test("with a fence (several instances), the info is written and a leftover data object replaced only once the claim is confirmed; a lost claim leaves no object of the writer's", async () => {
    const { store } = storeOn("fenced/");
    const raw = (key: string, body: string) => (s3Client as S3Client).send(new PutObjectCommand({ Bucket: "contract", Key: `fenced/${key}`, Body: body }));
    let confirms = 0;
    const held: PlacementFence = {
      confirm: async () => {
        confirms++;
      },
    };
    const one = Buffer.from("one");
    await store.putVersion(version("f", 1, one), [one], held);
    assert.equal(confirms, 1, "before the info");
    await raw("f/f-v000002.data", "leftover of a commit that never wrote its info");
    const two = Buffer.from("two, streamed");
    const stream = await store.beginVersionData("f");
    await stream.append([two]);
    await stream.commit(version("f", 2, two), held);
    assert.equal(confirms, 3, "before the leftover's replacement, and before the info");
    await store.markCommitted?.("f", 1);
    await store.markCommitted?.("f", 2);

    const lost: PlacementFence = {
      confirm: async () => {
        throw new RegistryError(Code.ABORTED, "the claim ran out (test)");
      },
    };
    const three = Buffer.from("three");
    const failed = await store.putVersion(version("f", 3, three), [three], lost).catch((error: unknown) => error);
    assert.ok(failed instanceof RegistryError);
    assert.deepEqual([failed.code, failed.message, isNumberSpent(failed)], [Code.ABORTED, "the claim ran out (test)", false]);
    await raw("f/f-v000004.data", "another writer's");
    assert.deepEqual(await registryCode(store.putVersion(version("f", 4, three), [three], lost)), { code: Code.ABORTED, message: "the claim ran out (test)" });

    const keys = await (s3Client as S3Client).send(new ListObjectsV2Command({ Bucket: "contract", Prefix: "fenced/" }));
    assert.deepEqual(
      (keys.Contents ?? []).map((o) => o.Key),
      [
        "fenced/f/.cogment-ts-pending-v000003",
        "fenced/f/.cogment-ts-pending-v000004",
        "fenced/f/f-v000001.data",
        "fenced/f/f-v000001.yaml",
        "fenced/f/f-v000002.data",
        "fenced/f/f-v000002.yaml",
        "fenced/f/f-v000004.data",
      ],
      "version 3's data went with its lost claim (its pending mark stays: it names only its info); version 4's object is left as it was",
    );
    assert.equal((await readRawObject("fenced/f/f-v000004.data")).toString(), "another writer's");
    assert.deepEqual(await readAt(store, "f", 2, 0, 100), two);
  });

  test("with a fence, a writer that stalls after its confirmation never removes nor replaces the objects the number's next holder wrote meanwhile", async () => {
    const { store } = storeOn("stale/");
    const raw = (key: string, body: string | Buffer) => (s3Client as S3Client).send(new PutObjectCommand({ Bucket: "contract", Key: `stale/${key}`, Body: body }));
    const mine = Buffer.from("the stale writer's bytes");
    const theirs = Buffer.from("the next holder's bytes");
    const theirInfo = encodeVersionInfo({ ...version("s", 1, theirs), dataHash: "the next holder's" });

    // Confirmed, then stalled past the lease before its info PUT: the next holder replaced the data
    // object (a leftover to it) and committed. The info PUT fails; the data is no longer ours to remove.
    const stalledBeforeInfo: PlacementFence = {
      confirm: async () => {
        await raw("s/s-v000001.data", theirs);
        await raw("s/s-v000001.yaml", theirInfo);
      },
    };
    const failed = await store.putVersion(version("s", 1, mine), [mine], stalledBeforeInfo).catch((error: unknown) => error);
    assert.ok(failed instanceof RegistryError);
    assert.equal(failed.code, Code.ALREADY_EXISTS);
    assert.match(failed.message, /^archive bucket "contract": writing stale\/s\/s-v000001\.yaml failed: PreconditionFailed: .*, HTTP 412$/);
    assert.equal(isNumberSpent(failed), true);
    assert.deepEqual(await readRawObject("stale/s/s-v000001.data"), theirs);
    assert.equal((await readRawObject("stale/s/s-v000001.yaml")).toString(), theirInfo);

    // Confirmed before replacing a leftover, then stalled: the next holder replaced the leftover
    // meanwhile. The replacement (If-Match on the leftover's ETag) fails, and the next confirmation.
    await raw("s/s-v000002.data", "leftover");
    let confirms = 0;
    const stalledBeforeReplacing: PlacementFence = {
      confirm: async () => {
        confirms++;
        if (confirms === 1) {
          await raw("s/s-v000002.data", theirs);
          return;
        }
        throw new RegistryError(Code.ABORTED, "the claim ran out (test)");
      },
    };
    assert.deepEqual(await registryCode(store.putVersion(version("s", 2, mine), [mine], stalledBeforeReplacing)), { code: Code.ABORTED, message: "the claim ran out (test)" });
    assert.equal(confirms, 2);
    assert.deepEqual(await readRawObject("stale/s/s-v000002.data"), theirs);
  });

  test("a streamed version larger than one copy is copied into place in parts", async () => {
    const { store } = storeOn("copy-parts/", { maxSingleCopyBytes: 1 });
    const data = randomBytes(2 * MiB + 5);
    const stream = await store.beginVersionData("p");
    await stream.append([data]);
    await stream.commit(version("p", 1, data));
    assert.deepEqual(await readAt(store, "p", 1, 0, data.length), data);
  });

  test("leftover upload objects of a dead writer are removed when their model is listed", async () => {
    const { store, warnings } = storeOn("leftovers/", { leftoverAgeMs: 0 });
    await (s3Client as S3Client).send(new PutObjectCommand({ Bucket: "contract", Key: "leftovers/l/.l-upload.data.tmp-0123456789abcdef", Body: "cut" }));
    assert.deepEqual(await store.listVersions("l"), []);
    assert.deepEqual(warnings.map((w) => w.details.key), ["leftovers/l/.l-upload.data.tmp-0123456789abcdef"]);
    const listed = await (s3Client as S3Client).send(new ListObjectsV2Command({ Bucket: "contract", Prefix: "leftovers/" }));
    assert.equal(listed.KeyCount, 0);
  });
});
