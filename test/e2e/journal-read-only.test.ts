/**
 * A start on a read-only archive keeps the model journal's records (it can neither apply nor void
 * them). A model write or deletion made beside them would be undone by the next start's replay, so
 * none is: once the archive is writable again they are voided first (the files matched them), or
 * the calls are refused until a restart (a file could not be restored, so what is served is older).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { modelInfoPath } from "../../src/archive/layout.js";
import { JOURNAL_FILE_NAME } from "../../src/archive/model-journal.js";
import { encodeModelInfo } from "../../src/archive/yaml-codec.js";
import { RegistryClient } from "../support/registry-client.js";
import { type ServerProcess, killAllServers, spawnServer } from "../support/server-process.js";

after(killAllServers);

const canMount = process.getuid?.() === 0;

async function listModels(server: ServerProcess): Promise<Record<string, Record<string, string>>> {
  const client = new RegistryClient(`127.0.0.1:${server.port}`);
  try {
    const { model_infos } = await client.retrieveModels({});
    return Object.fromEntries(model_infos.map((info) => [info.model_id, info.user_data]));
  } finally {
    client.close();
  }
}

/** The warnings about the journal and its files (the background leftover clean-up may add its own on a read-only archive). */
const warningsOf = (server: ServerProcess): string[] =>
  server.logLines.filter((line) => line.level === 40 && /journal/.test(String(line.msg))).map((line) => String(line.msg));

interface Archive {
  readonly mount: string;
  readonly dir: string;
  readonly env: Record<string, string>;
  /** The running server, stopped (and awaited) before the tmpfs is unmounted. */
  server: ServerProcess | undefined;
  remount(mode: "ro" | "rw"): void;
  start(): Promise<ServerProcess>;
  stop(signal: "SIGKILL" | "SIGTERM"): Promise<number | string>;
}

/** A tmpfs archive with two models created, the process then killed before any checkpoint: both only "in" the journal's records. */
async function crashedArchive(t: { after(fn: () => Promise<void>): void }): Promise<Archive> {
  const mount = await mkdtemp(path.join(tmpdir(), "mr-journal-ro-"));
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", mount]);
  const dir = path.join(mount, "archive");
  const archive: Archive = {
    mount,
    dir,
    env: { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: dir },
    server: undefined,
    remount: (mode) => execFileSync("mount", ["-o", `remount,${mode}`, mount]),
    async start() {
      archive.server = await spawnServer(archive.env);
      return archive.server;
    },
    async stop(signal) {
      const running = archive.server;
      archive.server = undefined;
      running?.child.kill(signal);
      return (await running?.exited) ?? "not running";
    },
  };
  t.after(async () => {
    await archive.stop("SIGKILL");
    execFileSync("umount", [mount]);
    await rm(mount, { recursive: true, force: true });
  });
  const server = await archive.start();
  const client = new RegistryClient(`127.0.0.1:${server.port}`);
  try {
    await client.createModel("doomed", { v: "1" });
    await client.createModel("kept", { v: "1" });
  } finally {
    client.close();
  }
  await archive.stop("SIGKILL");
  assert.notEqual((await readFile(path.join(dir, JOURNAL_FILE_NAME))).indexOf("kept/kept.yaml"), -1, "the records are in the journal");
  return archive;
}

type RpcError = { code: number; details: string };

describe("model journal kept by a start on a read-only archive", { skip: canMount ? false : "needs root to mount a tmpfs (CI runs as root)" }, () => {
  test("its files matching its records: refused while read-only, voided once writable; a deletion and an update then survive the next start", async (t) => {
    const archive = await crashedArchive(t);
    archive.remount("ro");
    let server = await archive.start();
    assert.deepEqual(await listModels(server), { doomed: { v: "1" }, kept: { v: "1" } });
    assert.deepEqual(warningsOf(server), [
      "model journal kept: its records could not be voided on a read-only archive; model infos can be neither written nor deleted until they are (tried again at each such call)",
    ]);
    const client = new RegistryClient(`127.0.0.1:${server.port}`);
    t.after(() => client.close());
    const stillReadOnly = (error: RpcError): boolean => {
      assert.equal(error.code, status.UNAVAILABLE);
      assert.equal(
        error.details,
        `the model journal ${path.join(archive.dir, JOURNAL_FILE_NAME)} holds 2 record(s) that could not be voided at start and still cannot be ` +
          `(EROFS: read-only file system, open '${path.join(archive.dir, JOURNAL_FILE_NAME)}'): model infos can be neither written nor deleted ` +
          "until they are; call again once the archive is writable",
      );
      return true;
    };
    await assert.rejects(client.deleteModel("doomed"), stillReadOnly);
    await assert.rejects(client.createModel("kept", { v: "2" }), stillReadOnly);

    // The operator makes the archive writable again; the server keeps running.
    archive.remount("rw");
    await client.deleteModel("doomed");
    await client.createModel("kept", { v: "2" });
    assert.deepEqual(await listModels(server), { kept: { v: "2" } });
    assert.ok(warningsOf(server).includes("model journal records voided once the archive became writable: model infos are written through the journal again"));
    assert.equal(await archive.stop("SIGTERM"), 0);

    server = await archive.start();
    assert.deepEqual(await listModels(server), { kept: { v: "2" } }, "the acknowledged deletion and update survive the restart");
    assert.deepEqual((await readdir(archive.dir)).sort(), [JOURNAL_FILE_NAME, ".cogment-ts-single-mode-run", "kept"]);
    assert.deepEqual(warningsOf(server), []);
  });

  test("a file it could not restore: writes and deletions refused until a restart on a writable archive, which restores it", async (t) => {
    const archive = await crashedArchive(t);
    // What a machine crash may leave: the acknowledged overwrite of "kept" lost, only its record has it.
    await writeFile(modelInfoPath(archive.dir, "kept"), encodeModelInfo({ modelId: "kept", userData: { v: "stale" } }));
    archive.remount("ro");
    let server = await archive.start();
    assert.deepEqual(await listModels(server), { doomed: { v: "1" }, kept: { v: "stale" } });
    assert.deepEqual(warningsOf(server), [
      "could not restore a model file from the journal; its last acknowledged change is missing",
      "model journal kept: its changes could not be applied on a read-only archive; model infos can be neither written nor deleted until the server restarts on a writable archive",
    ]);

    archive.remount("rw");
    const client = new RegistryClient(`127.0.0.1:${server.port}`);
    t.after(() => client.close());
    const keptPath = modelInfoPath(archive.dir, "kept");
    const refused = (error: RpcError): boolean => {
      assert.equal(error.code, status.UNAVAILABLE);
      const prefix = `the model journal ${path.join(archive.dir, JOURNAL_FILE_NAME)} could not be applied at start (${keptPath}: EROFS: read-only file system, `;
      const suffix = "): model infos can be neither written nor deleted until it is; restart the server once the archive is writable";
      assert.ok(error.details.startsWith(prefix) && error.details.endsWith(suffix), error.details);
      return true;
    };
    await assert.rejects(client.deleteModel("doomed"), refused);
    await assert.rejects(client.createModel("kept", { v: "2" }), refused);
    await assert.rejects(client.createModel("new", { v: "1" }), refused);
    assert.deepEqual(await listModels(server), { doomed: { v: "1" }, kept: { v: "stale" } }, "nothing changed");
    assert.equal(await archive.stop("SIGTERM"), 0);

    // The restart on the writable archive replays the journal: the acknowledged content is back.
    server = await archive.start();
    assert.deepEqual(await listModels(server), { doomed: { v: "1" }, kept: { v: "1" } });
    assert.deepEqual(warningsOf(server), ["model files restored from the journal after a crash"]);
    const writer = new RegistryClient(`127.0.0.1:${server.port}`);
    t.after(() => writer.close());
    await writer.deleteModel("doomed");
    await writer.createModel("kept", { v: "2" });
    assert.equal(await archive.stop("SIGTERM"), 0);
    server = await archive.start();
    assert.deepEqual(await listModels(server), { kept: { v: "2" } });
  });
});
