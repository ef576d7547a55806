import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdirSync, readlinkSync } from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { ArchiveStore } from "../../src/archive/archive-store.js";
import { inlineFileWriter, writeFileAtomic, writeVersionFilesAtomic } from "../../src/archive/atomic-write.js";
import { createFsArchiveStore } from "../../src/archive/fs-archive-store.js";
import {
  isTempFileName,
  metaFilePath,
  modelDirPath,
  modelInfoPath,
  parseVersionFileName,
  tempFileName,
  versionDataPath,
  versionInfoPath,
} from "../../src/archive/layout.js";
import { Code, RegistryError } from "../../src/errors/index.js";
import type { VersionRecord } from "../../src/domain/index.js";
import { ORIGINAL_ARCHIVE } from "../support/fixtures.js";

const fixtureRoot = ORIGINAL_ARCHIVE;

const tempDirs: string[] = [];
after(async () => {
  await Promise.all(tempDirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
});

async function makeTempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "mr-"));
  tempDirs.push(dir);
  return dir;
}

async function makeWritable(target: string): Promise<void> {
  const info = await fs.stat(target);
  if (info.isDirectory()) {
    await fs.chmod(target, 0o755);
    for (const name of await fs.readdir(target)) {
      await makeWritable(path.join(target, name));
    }
  } else {
    await fs.chmod(target, 0o644);
  }
}

/** A writable copy of the read-only fixture archive. */
async function copyFixture(): Promise<string> {
  const root = path.join(await makeTempDir(), "archive");
  await fs.cp(fixtureRoot, root, { recursive: true });
  await makeWritable(root);
  return root;
}

interface Warning {
  message: string;
  details: Record<string, unknown>;
}

function openStore(root: string, leftoverMinAgeMs?: number): { store: ArchiveStore; warnings: Warning[] } {
  const warnings: Warning[] = [];
  const store = createFsArchiveStore({
    root,
    writer: inlineFileWriter,
    onWarning: (message, details) => warnings.push({ message, details }),
    leftoverMinAgeMs,
  });
  return { store, warnings };
}

async function readAll(store: ArchiveStore, modelId: string, versionNumber: number): Promise<Buffer> {
  const reader = await store.openVersionData(modelId, versionNumber);
  try {
    const parts: Buffer[] = [];
    let position = 0;
    for (;;) {
      // A small buffer to exercise positioned reads.
      const target = new Uint8Array(333);
      const count = await reader.read(target, position);
      if (count === 0) {
        break;
      }
      parts.push(Buffer.from(target.subarray(0, count)));
      position += count;
    }
    const data = Buffer.concat(parts);
    assert.equal(data.length, reader.size);
    return data;
  } finally {
    await reader.close();
  }
}

const sha256 = (data: Uint8Array): string => createHash("sha256").update(data).digest("base64");

const isInvalidArgument = (error: unknown): boolean =>
  error instanceof RegistryError && error.code === Code.INVALID_ARGUMENT;

describe("archive layout", () => {
  const root = "/srv/archive";

  test("builds the original server's file names", () => {
    assert.equal(modelDirPath(root, "policy_net"), "/srv/archive/policy_net");
    assert.equal(modelInfoPath(root, "policy_net"), "/srv/archive/policy_net/policy_net.yaml");
    assert.equal(versionInfoPath(root, "policy_net", 1), "/srv/archive/policy_net/policy_net-v000001.yaml");
    assert.equal(versionDataPath(root, "value-net_2", 42), "/srv/archive/value-net_2/value-net_2-v000042.data");
    assert.equal(versionInfoPath(root, "m", 999999), "/srv/archive/m/m-v999999.yaml");
    assert.equal(versionDataPath(root, "m", 1234567), "/srv/archive/m/m-v1234567.data");
    assert.equal(metaFilePath(root, "m", "next-version"), "/srv/archive/m/.cogment-ts-next-version");
  });

  test("refuses ids, version numbers and keys that do not make a path inside the root", () => {
    for (const modelId of ["../x", "a/b", "..", ".", "", "/abs", "a\\b", ".hidden", "a\0b"]) {
      assert.throws(() => modelDirPath(root, modelId), isInvalidArgument, modelId);
      assert.throws(() => modelInfoPath(root, modelId), isInvalidArgument, modelId);
      assert.throws(() => versionInfoPath(root, modelId, 1), isInvalidArgument, modelId);
      assert.throws(() => versionDataPath(root, modelId, 1), isInvalidArgument, modelId);
      assert.throws(() => metaFilePath(root, modelId, "next-version"), isInvalidArgument, modelId);
    }
    for (const versionNumber of [0, -1, 1.5, Number.NaN, 2 ** 53]) {
      assert.throws(() => versionInfoPath(root, "m", versionNumber), isInvalidArgument, String(versionNumber));
      assert.throws(() => versionDataPath(root, "m", versionNumber), isInvalidArgument, String(versionNumber));
    }
    for (const key of ["", "Next", "next_version", "../x", "a/b", "a.b"]) {
      assert.throws(() => metaFilePath(root, "m", key), isInvalidArgument, key);
    }
  });

  test("recognises only canonical version file names of the model", () => {
    assert.deepEqual(parseVersionFileName("m", "m-v000001.yaml"), { versionNumber: 1, kind: "info" });
    assert.deepEqual(parseVersionFileName("m", "m-v000001.data"), { versionNumber: 1, kind: "data" });
    assert.deepEqual(parseVersionFileName("m", "m-v1234567.data"), { versionNumber: 1234567, kind: "data" });
    assert.deepEqual(parseVersionFileName("x-v2", "x-v2-v000003.yaml"), { versionNumber: 3, kind: "info" });
    for (const name of [
      "m.yaml",
      "m-v1.yaml",
      "m-v0000001.yaml",
      "m-v000000.yaml",
      "m-v000001.yml",
      "m-v000001.yaml.bak",
      "n-v000001.yaml",
      "mm-v000001.yaml",
      ".m-v000001.yaml.tmp-00ff",
      ".cogment-ts-next-version",
    ]) {
      assert.equal(parseVersionFileName("m", name), undefined, name);
    }
  });

  test("temporary names are dotfiles recognisable as such and nothing else is", () => {
    const name = tempFileName("m-v000001.data");
    assert.match(name, /^\.m-v000001\.data\.tmp-[0-9a-f]{16}$/);
    assert.notEqual(tempFileName("m.yaml"), tempFileName("m.yaml"));
    assert.equal(isTempFileName(name), true);
    assert.equal(isTempFileName(tempFileName("policy_net")), true);
    for (const other of ["m.yaml", "m-v000001.yaml", "m-v000001.data", ".cogment-ts-next-version", "m", ".tmp-00"]) {
      assert.equal(isTempFileName(other), false, other);
    }
  });
});

describe("atomic writes", () => {
  test("writeFileAtomic creates and replaces files, leaving no temporary file", async () => {
    const dir = await makeTempDir();
    const target = path.join(dir, "m.yaml");
    await writeFileAtomic(target, "first\n");
    assert.equal(await fs.readFile(target, "utf8"), "first\n");
    await writeFileAtomic(target, "second é\n");
    assert.equal(await fs.readFile(target, "utf8"), "second é\n");
    // More chunks than one writev call takes, some empty.
    const chunks = Array.from({ length: 3000 }, (_, i) => new Uint8Array(i % 3).fill(i % 256));
    const expected = Buffer.concat(chunks);
    await writeFileAtomic(target, chunks);
    assert.deepEqual(await fs.readFile(target), expected);
    await writeFileAtomic(target, []);
    assert.equal((await fs.readFile(target)).length, 0);
    assert.deepEqual(await fs.readdir(dir), ["m.yaml"]);
  });

  test("writeFileAtomic removes its temporary file and keeps the error code on failure", async () => {
    const dir = await makeTempDir();
    const target = path.join(dir, "m.yaml");
    await fs.mkdir(target);
    await assert.rejects(writeFileAtomic(target, "content"), { code: "EISDIR" });
    assert.deepEqual(await fs.readdir(dir), ["m.yaml"]);
    assert.equal((await fs.stat(target)).isDirectory(), true);

    await assert.rejects(writeFileAtomic(path.join(dir, "missing", "m.yaml"), "content"), { code: "ENOENT" });
    assert.deepEqual(await fs.readdir(dir), ["m.yaml"]);
  });

  test("writeVersionFilesAtomic writes data and info", async () => {
    const dir = await makeTempDir();
    const dataPath = path.join(dir, "m-v000001.data");
    const infoPath = path.join(dir, "m-v000001.yaml");
    await writeVersionFilesAtomic({
      dataPath,
      dataChunks: [Buffer.from("chunk_1"), Buffer.from("chunk_2")],
      infoPath,
      infoText: "info\n",
    });
    assert.equal(await fs.readFile(dataPath, "utf8"), "chunk_1chunk_2");
    assert.equal(await fs.readFile(infoPath, "utf8"), "info\n");
    assert.deepEqual((await fs.readdir(dir)).sort(), ["m-v000001.data", "m-v000001.yaml"]);
  });

  test("writeVersionFilesAtomic leaves neither file nor temporary file when the commit fails", async () => {
    const dir = await makeTempDir();
    const dataPath = path.join(dir, "m-v000001.data");
    const infoPath = path.join(dir, "m-v000001.yaml");
    await fs.mkdir(infoPath);
    await assert.rejects(
      writeVersionFilesAtomic({ dataPath, dataChunks: [Buffer.from("data")], infoPath, infoText: "info\n" }),
      { code: "EISDIR" },
    );
    // The data file had been renamed into place; it is removed again.
    assert.deepEqual(await fs.readdir(dir), ["m-v000001.yaml"]);

    const otherDir = await makeTempDir();
    await fs.mkdir(path.join(otherDir, "m-v000001.data"));
    await assert.rejects(
      writeVersionFilesAtomic({
        dataPath: path.join(otherDir, "m-v000001.data"),
        dataChunks: [Buffer.from("data")],
        infoPath: path.join(otherDir, "m-v000001.yaml"),
        infoText: "info\n",
      }),
      { code: "EISDIR" },
    );
    assert.deepEqual(await fs.readdir(otherDir), ["m-v000001.data"]);
  });
});

describe("filesystem archive store", () => {
  const policyNetVersions: VersionRecord[] = [
    {
      modelId: "policy_net",
      versionNumber: 1,
      creationTimestamp: 1633119005107454620n,
      archived: true,
      dataHash: "jY0g3VkUK62ILPr2JuaW5g7uQi0EcJVZJu8IYp3yfhI=",
      dataSize: 14,
      userData: { step: "1000" },
    },
    {
      modelId: "policy_net",
      versionNumber: 2,
      creationTimestamp: 1633119625907957639n,
      archived: true,
      dataHash: "stpb8nJXulMTAkybqMhoAM0vBn7e6vpc4NnZ2D7cyKE=",
      dataSize: 5000,
      userData: { step: "2000" },
    },
    {
      modelId: "policy_net",
      versionNumber: 4,
      creationTimestamp: 1633120000000000001n,
      archived: true,
      dataHash: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
      dataSize: 0,
      userData: { step: "3000" },
    },
  ];

  test("reads the original server's archive", async () => {
    await fs.access(fixtureRoot); // the fixture must exist: fail, never skip
    const root = await copyFixture();
    const { store, warnings } = openStore(root);
    await store.open();

    assert.deepEqual(await store.listModelIds(), ["empty_model", "modèle agent:v1", "policy_net", "value-net_2"]);
    assert.deepEqual(await store.readModel("empty_model"), {
      modelId: "empty_model",
      userData: { note: "no versions" },
    });
    assert.deepEqual(await store.readModel("policy_net"), {
      modelId: "policy_net",
      userData: { framework: "torch", type: "dqn" },
    });
    assert.deepEqual(await store.readModel("value-net_2"), { modelId: "value-net_2", userData: {} });
    assert.equal(await store.readModel("unknown"), undefined);

    assert.deepEqual(await store.listVersions("policy_net"), policyNetVersions);
    assert.deepEqual(await store.listVersions("value-net_2"), [
      {
        modelId: "value-net_2",
        versionNumber: 1,
        creationTimestamp: 1700000000123456789n,
        archived: true,
        dataHash: "eFsHUfwsU9wUpM49gA5p75zhAJ6zJ8z0WK/gnCQsJsk=",
        dataSize: 1024,
        userData: {},
      },
    ]);
    assert.deepEqual(await store.listVersions("empty_model"), []);
    assert.deepEqual(await store.listVersions("unknown"), []);

    const v1 = await readAll(store, "policy_net", 1);
    assert.equal(v1.toString("latin1"), "chunk_1chunk_2");
    const v2 = await readAll(store, "policy_net", 2);
    assert.deepEqual(v2, await fs.readFile(path.join(fixtureRoot, "policy_net/policy_net-v000002.data")));
    assert.equal(sha256(v2), "stpb8nJXulMTAkybqMhoAM0vBn7e6vpc4NnZ2D7cyKE=");
    const v4 = await readAll(store, "policy_net", 4);
    assert.equal(v4.length, 0);
    const valueNet = await readAll(store, "value-net_2", 1);
    const expectedValueNet = Buffer.alloc(1024);
    for (let i = 0; i < 1024; i++) {
      expectedValueNet[i] = i % 256;
    }
    assert.deepEqual(valueNet, expectedValueNet);
    for (const version of policyNetVersions) {
      assert.equal(sha256(await readAll(store, "policy_net", version.versionNumber)), version.dataHash);
    }

    await assert.rejects(
      store.openVersionData("policy_net", 3),
      (error: unknown) => error instanceof RegistryError && error.code === Code.NOT_FOUND,
    );
    await assert.rejects(
      store.openVersionData("unknown", 1),
      (error: unknown) => error instanceof RegistryError && error.code === Code.NOT_FOUND,
    );
    assert.deepEqual(warnings, []);
  });

  test("putVersion then listVersions round trip, in the original layout", async () => {
    const root = await copyFixture();
    const { store, warnings } = openStore(root);
    await store.open();
    const version: VersionRecord = {
      modelId: "policy_net",
      versionNumber: 5,
      creationTimestamp: 1700000000000000000n,
      archived: true,
      dataHash: sha256(Buffer.from("new weights")),
      dataSize: 11,
      userData: { step: "4000", note: "true" },
    };
    await store.putVersion(version, [Buffer.from("new "), new Uint8Array(0), Buffer.from("weights")]);

    assert.deepEqual(await store.listVersions("policy_net"), [...policyNetVersions, version]);
    assert.equal((await readAll(store, "policy_net", 5)).toString("utf8"), "new weights");
    assert.equal(
      await fs.readFile(path.join(root, "policy_net/policy_net-v000005.yaml"), "utf8"),
      "model_id: policy_net\n" +
        "version_number: 5\n" +
        "creation_timestamp: 2023-11-14T22:13:20Z\n" +
        `data_hash: ${version.dataHash}\n` +
        "data_size: 11\n" +
        "user_data:\n" +
        '  note: "true"\n' +
        '  step: "4000"\n',
    );
    assert.deepEqual((await fs.readdir(path.join(root, "policy_net"))).sort(), [
      "policy_net-v000001.data",
      "policy_net-v000001.yaml",
      "policy_net-v000002.data",
      "policy_net-v000002.yaml",
      "policy_net-v000004.data",
      "policy_net-v000004.yaml",
      "policy_net-v000005.data",
      "policy_net-v000005.yaml",
      "policy_net.yaml",
    ]);

    // A fresh store over the same directory sees the same thing.
    assert.deepEqual(await openStore(root).store.listVersions("policy_net"), [...policyNetVersions, version]);

    await store.deleteVersion("policy_net", 2);
    await store.deleteVersion("policy_net", 3);
    assert.deepEqual(
      (await store.listVersions("policy_net")).map((v) => v.versionNumber),
      [1, 4, 5],
    );
    assert.deepEqual(warnings, []);
  });

  test("putVersion refuses data whose size is not data_size, and transient versions", async () => {
    const { store } = openStore(await copyFixture());
    const version: VersionRecord = { ...policyNetVersions[0]!, versionNumber: 7 };
    await assert.rejects(store.putVersion(version, [Buffer.from("short")]), /data is 5 bytes, data_size is 14/);
    await assert.rejects(
      store.putVersion({ ...version, archived: false }, [Buffer.from("chunk_1chunk_2")]),
      /is not archived/,
    );
    assert.deepEqual(
      (await store.listVersions("policy_net")).map((v) => v.versionNumber),
      [1, 2, 4],
    );
  });

  test("skips incomplete or inconsistent versions with a warning", async () => {
    const root = await copyFixture();
    const dir = path.join(root, "policy_net");
    const { store, warnings } = openStore(root);
    const v1Info = await fs.readFile(path.join(dir, "policy_net-v000001.yaml"), "utf8");
    // Info without data.
    const infoOf = (n: number): string => v1Info.replace("version_number: 1", `version_number: ${n}`);
    await fs.writeFile(path.join(dir, "policy_net-v000010.yaml"), infoOf(10));
    // Data without info.
    await fs.writeFile(path.join(dir, "policy_net-v000011.data"), "orphan");
    // Data size differs from data_size.
    await fs.writeFile(path.join(dir, "policy_net-v000012.yaml"), infoOf(12));
    await fs.writeFile(path.join(dir, "policy_net-v000012.data"), "too short");
    // Unparsable info.
    await fs.writeFile(path.join(dir, "policy_net-v000013.yaml"), "model_id: [\n");
    await fs.writeFile(path.join(dir, "policy_net-v000013.data"), "");
    // Info of another version.
    await fs.writeFile(path.join(dir, "policy_net-v000014.yaml"), v1Info);
    await fs.writeFile(path.join(dir, "policy_net-v000014.data"), "chunk_1chunk_2");
    // Not version files at all: ignored silently.
    await fs.writeFile(path.join(dir, "policy_net-v15.yaml"), "junk");
    await fs.writeFile(path.join(dir, "notes.txt"), "junk");

    assert.deepEqual(await store.listVersions("policy_net"), policyNetVersions);
    const skipped = (reason: string, n: number, file: string): unknown[] => [
      `archived version skipped: ${reason}`,
      n,
      path.join(dir, file),
    ];
    assert.deepEqual(
      warnings.map((w) => [w.message, w.details["versionNumber"], w.details["path"]]),
      [
        skipped("version info without data file", 10, "policy_net-v000010.yaml"),
        skipped("data file without version info", 11, "policy_net-v000011.data"),
        skipped("data file size differs from data_size", 12, "policy_net-v000012.data"),
        skipped("unreadable version info", 13, "policy_net-v000013.yaml"),
        skipped("version info names another version", 14, "policy_net-v000014.yaml"),
      ],
    );
    assert.deepEqual(warnings[2]?.details, {
      modelId: "policy_net",
      versionNumber: 12,
      path: path.join(dir, "policy_net-v000012.data"),
      expectedSize: 14,
      actualSize: 9,
    });
  });

  test("open() creates the root; removeLeftovers() removes leftover temporary files", async () => {
    const base = await makeTempDir();
    const fresh = path.join(base, "nested", "archive");
    await openStore(fresh).store.open();
    assert.deepEqual(await fs.readdir(fresh), []);

    const root = await copyFixture();
    const dir = path.join(root, "policy_net");
    const leftovers = [
      path.join(dir, tempFileName("policy_net-v000005.data")),
      path.join(dir, tempFileName("policy_net-v000005.yaml")),
      path.join(dir, tempFileName(".cogment-ts-next-version")),
      path.join(root, "value-net_2", tempFileName("value-net_2.yaml")),
    ];
    for (const leftover of leftovers) {
      await fs.writeFile(leftover, "partial");
    }
    // What remains of an interrupted model deletion.
    const deleted = path.join(root, tempFileName("old_model"));
    await fs.mkdir(deleted);
    await fs.writeFile(path.join(deleted, "old_model.yaml"), "model_id: old_model\n");

    const { store, warnings } = openStore(root);
    await store.open();
    await store.removeLeftovers?.();
    assert.deepEqual(
      warnings.map((w) => w.details["path"]).sort(),
      [...leftovers, deleted].sort(),
    );
    assert.ok(warnings.every((w) => w.message === "removed leftover temporary file of an interrupted write"));
    assert.deepEqual((await fs.readdir(root)).sort(), ["empty_model", "modèle agent:v1", "policy_net", "value-net_2"]);
    assert.equal((await fs.readdir(dir)).length, 7);
    assert.deepEqual((await fs.readdir(path.join(root, "value-net_2"))).sort(), [
      "value-net_2-v000001.data",
      "value-net_2-v000001.yaml",
      "value-net_2.yaml",
    ].sort());
    assert.deepEqual(await store.listVersions("policy_net"), policyNetVersions);
  });

  test("removeLeftovers() in a shared directory removes only the temporary files untouched for leftoverMinAgeMs", async () => {
    const root = await copyFixture();
    const dir = path.join(root, "policy_net");
    const hourAgo = new Date(Date.now() - 60 * 60 * 1000 - 1000);
    const stale = path.join(dir, tempFileName("policy_net-v000005.data"));
    const staleDeletion = path.join(root, tempFileName("old_model"));
    const inProgress = path.join(dir, tempFileName("policy_net-v000006.data"));
    const freshDeletion = path.join(root, tempFileName("other_model"));
    for (const file of [stale, inProgress]) {
      await fs.writeFile(file, "partial");
    }
    for (const directory of [staleDeletion, freshDeletion]) {
      await fs.mkdir(directory);
    }
    for (const old of [stale, staleDeletion]) {
      await fs.utimes(old, hourAgo, hourAgo);
    }

    const { store, warnings } = openStore(root, 60 * 60 * 1000);
    await store.open();
    await store.removeLeftovers?.();
    assert.deepEqual(warnings.map((w) => w.details["path"]).sort(), [stale, staleDeletion].sort());
    assert.ok(warnings.every((w) => w.message === "removed leftover temporary file of an interrupted write"));
    await fs.access(inProgress);
    await fs.access(freshDeletion);
    await assert.rejects(fs.access(stale), { code: "ENOENT" });
    await assert.rejects(fs.access(staleDeletion), { code: "ENOENT" });
  });

  test("writeModel, listModelIds and deleteModel", async () => {
    const root = path.join(await makeTempDir(), "archive");
    const { store, warnings } = openStore(root);
    await store.open();
    assert.deepEqual(await store.listModelIds(), []);

    await store.writeModel({ modelId: "zeta", userData: {} });
    await store.writeModel({ modelId: "Alpha", userData: { a: "1" } });
    await store.writeModel({ modelId: "beta", userData: { framework: "torch" } });
    // A directory without its model info is not a model.
    await fs.mkdir(path.join(root, "orphan"));
    await fs.writeFile(path.join(root, "stray.yaml"), "model_id: stray\n");
    assert.deepEqual(await store.listModelIds(), ["Alpha", "beta", "zeta"]);
    assert.equal(
      await fs.readFile(path.join(root, "Alpha/Alpha.yaml"), "utf8"),
      'model_id: Alpha\nuser_data:\n  a: "1"\n',
    );

    await store.writeModel({ modelId: "beta", userData: { framework: "jax" } });
    assert.deepEqual(await store.readModel("beta"), { modelId: "beta", userData: { framework: "jax" } });
    assert.deepEqual(await fs.readdir(path.join(root, "beta")), ["beta.yaml"]);

    await store.putVersion(
      {
        modelId: "beta",
        versionNumber: 1,
        creationTimestamp: 0n,
        archived: true,
        dataHash: sha256(Buffer.from("x")),
        dataSize: 1,
        userData: {},
      },
      [Buffer.from("x")],
    );
    await store.deleteModel("beta");
    await store.deleteModel("never-existed");
    assert.deepEqual(await store.listModelIds(), ["Alpha", "zeta"]);
    assert.equal(await store.readModel("beta"), undefined);
    assert.deepEqual(await store.listVersions("beta"), []);
    assert.deepEqual((await fs.readdir(root)).sort(), ["Alpha", "orphan", "stray.yaml", "zeta"]);
    await assert.rejects(store.readModel("../x"), isInvalidArgument);
    await assert.rejects(store.writeModel({ modelId: "a/b", userData: {} }), isInvalidArgument);
    assert.deepEqual(warnings, []);
  });

  test("a model directory removed behind the server's back is made again by the next write", async () => {
    const root = path.join(await makeTempDir(), "archive");
    const { store, warnings } = openStore(root);
    await store.open();
    await store.writeModel({ modelId: "m", userData: {} });
    await fs.rm(path.join(root, "m"), { recursive: true });
    await store.writeModel({ modelId: "m", userData: { step: "2" } });
    assert.deepEqual(await store.readModel("m"), { modelId: "m", userData: { step: "2" } });
    await fs.rm(path.join(root, "m"), { recursive: true });
    await store.writeMeta("m", "next-version", "7");
    assert.equal(await store.readMeta("m", "next-version"), "7");
    await fs.rm(path.join(root, "m"), { recursive: true });
    const version: VersionRecord = {
      modelId: "m",
      versionNumber: 1,
      creationTimestamp: 0n,
      archived: true,
      dataHash: sha256(Buffer.from("x")),
      dataSize: 1,
      userData: {},
    };
    await store.putVersion(version, [Buffer.from("x")]);
    assert.deepEqual((await fs.readdir(path.join(root, "m"))).sort(), ["m-v000001.data", "m-v000001.yaml"]);
    // Deleted then created again through the store: made again too.
    await store.deleteModel("m");
    await store.writeModel({ modelId: "m", userData: {} });
    assert.deepEqual(await fs.readdir(path.join(root, "m")), ["m.yaml"]);
    assert.deepEqual(warnings, []);
  });

  test("readModel trusts the directory when the file names another model", async () => {
    const root = await copyFixture();
    const { store, warnings } = openStore(root);
    await fs.writeFile(path.join(root, "empty_model/empty_model.yaml"), "model_id: other\nuser_data: {}\n");
    assert.deepEqual(await store.readModel("empty_model"), { modelId: "empty_model", userData: {} });
    assert.equal(warnings.length, 1);
  });

  test("an unreadable model info skips that model with a warning; the others open", async () => {
    const root = await copyFixture();
    // A crash of a writer that was not atomic, a truncated copy, a symlink loop.
    await fs.writeFile(path.join(root, "empty_model/empty_model.yaml"), "");
    await fs.writeFile(path.join(root, "value-net_2/value-net_2.yaml"), "model_id: [\n");
    await fs.mkdir(path.join(root, "looped"));
    await fs.symlink("looped.yaml", path.join(root, "looped/looped.yaml"));
    const { store, warnings } = openStore(root);
    await store.open();
    const ids = await store.listModelIds();
    assert.deepEqual(ids, ["empty_model", "modèle agent:v1", "policy_net", "value-net_2"]);
    const models = await Promise.all(ids.map((id) => store.readModel(id)));
    assert.deepEqual(
      models.map((model) => model?.modelId),
      [undefined, "modèle agent:v1", "policy_net", undefined],
    );
    assert.deepEqual(
      warnings.map((w) => [w.message, path.relative(root, String(w.details["path"])), String(w.details["error"]).slice(0, 40)]).sort(),
      [
        ["model skipped: unreadable model info", "empty_model/empty_model.yaml", "model info: expected a YAML mapping at t"],
        ["model skipped: unreadable model info", "looped/looped.yaml", "ELOOP: too many symbolic links encounter"],
        ["model skipped: unreadable model info", "value-net_2/value-net_2.yaml", "model info: invalid YAML: Flow sequence "],
      ],
    );
    assert.deepEqual(await store.listVersions("policy_net"), policyNetVersions);
  });

  test("meta files are dotfiles that never disturb the layout", async () => {
    const root = await copyFixture();
    const { store, warnings } = openStore(root);
    await store.open();
    assert.equal(await store.readMeta("policy_net", "next-version"), undefined);
    assert.equal(await store.readMeta("unknown", "next-version"), undefined);
    await store.writeMeta("policy_net", "next-version", "5");
    assert.equal(await store.readMeta("policy_net", "next-version"), "5");
    await store.writeMeta("policy_net", "next-version", "6");
    assert.equal(await store.readMeta("policy_net", "next-version"), "6");
    assert.equal(await fs.readFile(path.join(root, "policy_net/.cogment-ts-next-version"), "utf8"), "6");
    await assert.rejects(store.writeMeta("policy_net", "Next", "1"), isInvalidArgument);
    await assert.rejects(store.readMeta("policy_net", "../x"), isInvalidArgument);

    await store.open();
    assert.equal(await store.readMeta("policy_net", "next-version"), "6");
    assert.deepEqual(await store.listModelIds(), ["empty_model", "modèle agent:v1", "policy_net", "value-net_2"]);
    assert.deepEqual(await store.listVersions("policy_net"), policyNetVersions);
    assert.deepEqual(warnings, []);
  });

  test("overwriteMeta writes one fixed-size record in place; durable writes cut what was longer", async () => {
    const root = await copyFixture();
    const { store, warnings } = openStore(root);
    await store.open();
    const file = path.join(root, "policy_net/.cogment-ts-version-record");
    await store.overwriteMeta("policy_net", "version-record", "a longer value", { durable: false });
    const before = await fs.stat(file);
    await store.overwriteMeta("policy_net", "version-record", "short", { durable: false });
    assert.equal(await fs.readFile(file, "utf8"), `${"short".padEnd(127)}\n`);
    assert.equal((await store.readMeta("policy_net", "version-record"))?.trim(), "short");
    assert.equal((await fs.stat(file)).ino, before.ino, "overwritten, not replaced");
    await fs.appendFile(file, "junk after the record");
    await store.overwriteMeta("policy_net", "version-record", "durable", { durable: true });
    assert.equal(await fs.readFile(file, "utf8"), `${"durable".padEnd(127)}\n`);
    await assert.rejects(store.overwriteMeta("policy_net", "version-record", "x".repeat(128), { durable: false }), {
      message: "metadata record of 128 bytes: at most 127 fit",
    });
    await assert.rejects(store.overwriteMeta("policy_net", "Bad", "1", { durable: false }), isInvalidArgument);
    assert.deepEqual(await store.listVersions("policy_net"), policyNetVersions);
    assert.deepEqual(warnings, []);
  });

  test("page-cache records follow their file: removed, its model directory removed, the model deleted and made again", async () => {
    const root = path.join(await makeTempDir(), "archive");
    const { store, warnings } = openStore(root);
    await store.open();
    const file = path.join(root, "m/.cogment-ts-version-record");
    const record = (value: string): string => `${value.padEnd(127)}\n`;
    await store.writeModel({ modelId: "m", userData: {} });
    await store.overwriteMeta("m", "version-record", "1", { durable: false });
    await store.overwriteMeta("m", "version-record", "2", { durable: false });
    assert.equal(await fs.readFile(file, "utf8"), record("2"));

    await nextTurns(2); // the file is held open while written turn after turn (see the next test)
    await fs.rm(file); // behind the server's back: the next write makes the file again
    await store.overwriteMeta("m", "version-record", "3", { durable: false });
    assert.equal(await fs.readFile(file, "utf8"), record("3"));

    await fs.rm(path.join(root, "m"), { recursive: true }); // the model directory with it: fails as a first write would
    await assert.rejects(store.overwriteMeta("m", "version-record", "4", { durable: false }), { code: "ENOENT" });

    await store.writeModel({ modelId: "m", userData: {} });
    await store.overwriteMeta("m", "version-record", "5", { durable: false });
    assert.equal(await fs.readFile(file, "utf8"), record("5"));
    await store.deleteModel("m");
    await store.writeModel({ modelId: "m", userData: {} });
    await store.overwriteMeta("m", "version-record", "6", { durable: false });
    assert.equal(await fs.readFile(file, "utf8"), record("6"), "written into the new directory, not the deleted one");

    // More models than files kept open: every record still lands in its own file.
    for (let i = 0; i < 80; i++) {
      await store.writeModel({ modelId: `n${i}`, userData: {} });
      await store.overwriteMeta(`n${i}`, "version-record", `first ${i}`, { durable: false });
    }
    for (let i = 0; i < 80; i++) {
      await store.overwriteMeta(`n${i}`, "version-record", `second ${i}`, { durable: false });
    }
    for (let i = 0; i < 80; i++) {
      assert.equal(await fs.readFile(path.join(root, `n${i}/.cogment-ts-version-record`), "utf8"), record(`second ${i}`));
    }
    assert.deepEqual(warnings, []);
  });
  test("a page-cache record's file is held open while written turn after turn, and closed at the second turn without a write", async () => {
    const root = path.join(await makeTempDir(), "archive");
    const { store, warnings } = openStore(root);
    await store.open();
    const file = path.join(root, "m/.cogment-ts-version-record");
    await store.writeModel({ modelId: "m", userData: {} });
    assert.deepEqual(heldFiles(root), []);
    await store.overwriteMeta("m", "version-record", "1", { durable: false });
    await store.overwriteMeta("m", "version-record", "2", { durable: false });
    assert.deepEqual(heldFiles(root), [file], "one descriptor for both writes");
    await nextTurns(1);
    await store.overwriteMeta("m", "version-record", "3", { durable: false });
    await nextTurns(1);
    assert.deepEqual(heldFiles(root), [file], "written in the previous turn: still held");
    await nextTurns(1);
    assert.deepEqual(heldFiles(root), [], "closed at the second turn without a write");
    assert.equal(await fs.readFile(file, "utf8"), `${"3".padEnd(127)}\n`);

    await store.overwriteMeta("m", "version-record", "4", { durable: false });
    assert.deepEqual(heldFiles(root), [file]);
    const deleting = store.deleteModel("m");
    assert.deepEqual(heldFiles(root), [], "closed before the model's directory goes");
    await deleting;

    for (let i = 0; i < 100; i++) {
      await store.writeModel({ modelId: `n${i}`, userData: {} });
    }
    for (let i = 0; i < 100; i++) {
      await store.overwriteMeta(`n${i}`, "version-record", `first ${i}`, { durable: false });
    }
    assert.equal(heldFiles(root).length, 64, "at most 64 held at once");
    for (let i = 0; i < 100; i++) {
      assert.equal(await fs.readFile(path.join(root, `n${i}/.cogment-ts-version-record`), "utf8"), `${`first ${i}`.padEnd(127)}\n`);
    }
    await store.overwriteMeta("n0", "version-record", "again", { durable: false });
    await store.close?.();
    assert.deepEqual(heldFiles(root), [], "close() closes every held file");
    assert.equal(await fs.readFile(path.join(root, "n0/.cogment-ts-version-record"), "utf8"), `${"again".padEnd(127)}\n`);
    assert.deepEqual(warnings, []);
  });
});

/** Lets `count` event-loop turns pass (each setImmediate callback runs in the next turn's check phase). */
async function nextTurns(count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** The files under `root` this process holds a descriptor of, sorted. */
function heldFiles(root: string): string[] {
  const held: string[] = [];
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(`${root}/`)) {
        held.push(target);
      }
    } catch {
      // closed meanwhile (the listing's own descriptor)
    }
  }
  return held.sort();
}
