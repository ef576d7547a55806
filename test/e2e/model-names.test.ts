// Model ids the original server accepts (it stores the id as a directory name): every RPC, transient
// and archived, across a restart, in the original's archive, in logs and in metrics.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmod, cp, mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import path from "node:path";
import { describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { JOURNAL_FILE_NAME } from "../../src/archive/model-journal.js";
import { startServer } from "../../src/server.js";
import { ORIGINAL_ARCHIVE } from "../support/fixtures.js";
import { archiveRootEntries } from "../support/leftover-files.js";
import { RegistryClient, type WireVersionInfo } from "../support/registry-client.js";
import { DEFAULT_TEST_CONFIG, type TestServer, makeArchiveDir, startTestServer } from "../support/test-server.js";

/** The archive root's entries but the model journal, which the server makes at start (archive-format.md), and the start-up clean-up's passing clock probe. */
/** The registry's own files at the root: the model journal and the single-mode run's mark. */
const isOwnRootFile = (name: string): boolean => name === JOURNAL_FILE_NAME || name === ".cogment-ts-single-mode-run";
const modelEntries = async (archiveDir: string): Promise<string[]> => (await archiveRootEntries(archiveDir)).filter((name) => !isOwnRootFile(name));

const RULE =
  "expected 1 to 242 bytes of UTF-8, not starting with '.', without '/', '\\' or control characters (U+0000 to U+001F, U+007F)";

/** Ids the previous `[A-Za-z0-9._-]` rule refused and the original accepts. */
const NAMES = [
  "my model",
  "agent:v1",
  "a+b",
  "modèle",
  "a@b",
  "#1 model",
  "100%",
  "k=v,w=x",
  'say "hi"',
  "it's",
  "true",
  "-",
  "trailing space ",
  "ends with a dot.",
  "x..y",
  "<<",
  "ﾟ\uFF61",
  "😀 emoji",
  "\u{1F600}",
  "line\u2028separator",
  "next\u0085line",
  "nbsp\u00a0bom\ufeff",
  "é".repeat(121), // 242 bytes of UTF-8: the longest
  "a".repeat(242),
];

const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");
const utf8Order = (ids: readonly string[]): string[] => [...ids].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));

function firstUpdate(client: RegistryClient, modelId: string): Promise<WireVersionInfo> {
  return new Promise((resolve, reject) => {
    const stream = client.versionUpdate(modelId);
    stream.once("data", (message: { version_info: WireVersionInfo }) => {
      resolve(message.version_info);
      stream.cancel();
    });
    stream.on("error", (error: { code?: number }) => {
      if (error.code !== grpc.status.CANCELLED) reject(error as Error);
    });
  });
}

async function copyOriginalArchive(): Promise<string> {
  const dir = await makeArchiveDir();
  await cp(ORIGINAL_ARCHIVE, dir, { recursive: true });
  for (const entry of await readdir(dir, { recursive: true })) {
    await chmod(path.join(dir, entry), 0o755);
  }
  return dir;
}

describe("model ids the original accepts", () => {
  test("work in every RPC, transient and archived, are stored byte for byte and survive a restart", async (t) => {
    let server: TestServer = await startTestServer();
    const archiveDir = server.archiveDir;
    t.after(async () => {
      await server.stop();
      await rm(archiveDir, { recursive: true, force: true });
    });
    let { client } = server;
    const archived = new Map<string, WireVersionInfo>();
    for (const id of NAMES) {
      await client.createModel(id, { name: id });
      const v1 = await client.publish(id, Buffer.from(`archived ${id}`), { archived: true, user_data: { id } });
      const v2 = await client.publish(id, Buffer.from(`transient ${id}`));
      assert.deepEqual([v1.model_id, v1.version_number, v1.archived, v2.model_id, v2.version_number, v2.archived], [id, 1, true, id, 2, false]);
      archived.set(id, v1);
      assert.deepEqual(await client.retrieveModels({ model_ids: [id] }), { model_infos: [{ model_id: id, user_data: { name: id } }], next_model_handle: "1" });
      assert.deepEqual(await client.retrieveVersionInfos({ model_id: id }), { version_infos: [v1, v2], next_version_handle: "3" });
      assert.equal((await client.retrieveData(id, 1)).toString(), `archived ${id}`);
      assert.equal((await client.retrieveData(id, -1)).toString(), `transient ${id}`);
      assert.deepEqual(await firstUpdate(client, id), v2);
    }
    const listing = await client.retrieveModels();
    assert.deepEqual(listing.model_infos.map((m) => m.model_id), utf8Order(NAMES));

    // One directory per model, named with the id's own bytes (no normalisation), holding the original's file names.
    const directories = (await readdir(archiveDir, { encoding: "buffer" })).filter((name) => !isOwnRootFile(name.toString()));
    assert.deepEqual(
      directories.map((name) => name.toString("hex")).sort(),
      NAMES.map((id) => Buffer.from(id).toString("hex")).sort(),
    );
    for (const id of NAMES) {
      const files = (await readdir(path.join(archiveDir, id))).filter((name) => !name.startsWith(".")).sort();
      assert.deepEqual(files, [`${id}-v000001.data`, `${id}-v000001.yaml`, `${id}.yaml`].sort());
      assert.equal(await readFile(path.join(archiveDir, id, `${id}-v000001.data`), "utf8"), `archived ${id}`);
    }

    await server.stop();
    server = await startTestServer({ archiveDir });
    client = server.client;
    const reopened = await client.retrieveModels();
    assert.deepEqual(
      reopened.model_infos,
      utf8Order(NAMES).map((id) => ({ model_id: id, user_data: { name: id } })),
    );
    for (const id of NAMES) {
      assert.deepEqual((await client.retrieveVersionInfos({ model_id: id })).version_infos, [archived.get(id)]);
      const data = await client.retrieveData(id, 1);
      assert.equal(data.toString(), `archived ${id}`);
      assert.equal(sha256(data), archived.get(id)?.data_hash);
    }

    for (const id of NAMES) {
      await client.deleteModel(id);
      await assert.rejects(client.retrieveVersionInfos({ model_id: id }), { code: grpc.status.NOT_FOUND, details: `model "${id}" not found` });
    }
    assert.deepEqual((await client.retrieveModels()).model_infos, []);
    assert.deepEqual(await modelEntries(archiveDir), [], "no directory or temporary file left");
  });

  test("RetrieveModels sorts by the bytes of UTF-8 (Go's order), not by UTF-16 code units", async (t) => {
    const server = await startTestServer();
    t.after(() => server.close());
    // U+FF61 is one UTF-16 unit (0xFF61), U+1F600 two (0xD83D 0xDE00): UTF-16 order puts the emoji first,
    // UTF-8 (EF BD A1 < F0 9F 98 80) puts it last.
    const ids = ["\u{1F600}", "\uFF61", "z", "é", "Z", "a b", "a"];
    for (const id of ids) {
      await server.client.createModel(id);
    }
    const expected = ["Z", "a", "a b", "z", "é", "\uFF61", "\u{1F600}"];
    assert.notDeepEqual([...ids].sort(), expected, "the default sort disagrees, so this test tells them apart");
    const all = await server.client.retrieveModels();
    assert.deepEqual(all.model_infos.map((m) => m.model_id), expected);
    const pages: string[][] = [];
    let handle = "";
    for (let i = 0; i < 4; i++) {
      const page = await server.client.retrieveModels({ models_count: 2, model_handle: handle });
      pages.push(page.model_infos.map((m) => m.model_id));
      handle = page.next_model_handle;
    }
    assert.deepEqual(pages, [["Z", "a"], ["a b", "z"], ["é", "\uFF61"], ["\u{1F600}"]]);
  });

  test("a model with such an id in an archive the original wrote is served, extended and deleted", async (t) => {
    const archiveDir = await copyOriginalArchive();
    // Directories the original could have left that no request can name: not listed, nothing else disturbed.
    for (const unreachable of ["tab\tin name", "b".repeat(250)]) {
      await mkdir(path.join(archiveDir, unreachable));
      await writeFile(path.join(archiveDir, unreachable, `${unreachable}.yaml`), `model_id: "${unreachable.replace("\t", "\\t")}"\nuser_data: {}\n`);
    }
    let server = await startTestServer({ archiveDir });
    assert.deepEqual(
      (await server.client.retrieveModels()).model_infos.map((m) => m.model_id),
      ["empty_model", "modèle agent:v1", "policy_net", "value-net_2"],
    );
    t.after(async () => {
      await server.stop();
      await rm(archiveDir, { recursive: true, force: true });
    });
    const id = "modèle agent:v1";
    assert.deepEqual(await server.client.retrieveModels({ model_ids: [id] }), {
      model_infos: [{ model_id: id, user_data: { "clé:x": "a b", équipe: "rouge" } }],
      next_model_handle: "1",
    });
    const original: WireVersionInfo = {
      model_id: id,
      version_number: 1,
      creation_timestamp: "1701000000000000042",
      archived: true,
      data_hash: sha256(Buffer.from("données v1 🚀")),
      data_size: "16",
      user_data: { étape: "10" },
    };
    assert.deepEqual(await server.client.retrieveVersionInfos({ model_id: id }), { version_infos: [original], next_version_handle: "2" });
    assert.equal((await server.client.retrieveData(id, 1)).toString(), "données v1 🚀");

    const v2 = await server.client.publish(id, Buffer.from("v2"), { archived: true });
    assert.equal(v2.version_number, 2);
    const v2Yaml = await readFile(path.join(archiveDir, id, `${id}-v000002.yaml`), "utf8");
    assert.equal(v2Yaml.split("\n")[0], "model_id: modèle agent:v1", "written as the original writes it");

    await server.stop();
    server = await startTestServer({ archiveDir });
    assert.deepEqual((await server.client.retrieveVersionInfos({ model_id: id })).version_infos, [original, v2]);
    assert.equal((await server.client.retrieveData(id, 2)).toString(), "v2");
    await server.client.deleteModel(id);
    assert.deepEqual((await modelEntries(archiveDir)).sort(), ["b".repeat(250), "empty_model", "policy_net", "tab\tin name", "value-net_2"]);
  });

  test("ids that cannot be one file name are INVALID_ARGUMENT in every RPC, naming the rule", async (t) => {
    const server = await startTestServer();
    t.after(() => server.close());
    const { client } = server;
    const refused: [string, string, string][] = [
      ["", '""', "it is empty"],
      [".", '"."', 'it is "."'],
      ["..", '".."', 'it is ".."'],
      [".hidden", '".hidden"', "it starts with '.' (reserved for the registry's own files)"],
      ["../escape", '"../escape"', "it starts with '.' (reserved for the registry's own files)"],
      ["a/b", '"a/b"', "it contains '/'"],
      ["a\\b", '"a\\\\b"', "it contains '\\'"],
      ["nul\0byte", '"nul\\u0000byte"', "it contains the control character U+0000"],
      ["tab\there", '"tab\\there"', "it contains the control character U+0009"],
      ["line\nbreak", '"line\\nbreak"', "it contains the control character U+000A"],
      ["unit\u001fsep", '"unit\\u001fsep"', "it contains the control character U+001F"],
      ["del\u007f", '"del\u007f"', "it contains the control character U+007F"],
      ["a".repeat(243), `"${"a".repeat(64)}"… (243 bytes of UTF-8)`, "it is 243 bytes of UTF-8, more than 242"],
      ["é".repeat(122), `"${"é".repeat(64)}"… (244 bytes of UTF-8)`, "it is 244 bytes of UTF-8, more than 242"],
      ["😀".repeat(61), `"${"😀".repeat(61)}"`, "it is 244 bytes of UTF-8, more than 242"],
    ];
    for (const [id, shown, problem] of refused) {
      const invalid = (field: string) => ({ code: grpc.status.INVALID_ARGUMENT, details: `${field} ${shown} is invalid: ${problem}; ${RULE}` });
      await assert.rejects(client.createModel(id), invalid("model_info.model_id"));
      await assert.rejects(client.deleteModel(id), invalid("model_id"));
      await assert.rejects(client.retrieveModels({ model_ids: ["fine", id] }), invalid("model_ids[1]"));
      await assert.rejects(client.retrieveVersionInfos({ model_id: id }), invalid("model_id"));
      await assert.rejects(client.retrieveData(id, 1), invalid("model_id"));
      await assert.rejects(client.publish(id, Buffer.from("x"), { archived: true }), invalid("header.version_info.model_id"));
      await assert.rejects(firstUpdate(client, id), invalid("model_id"));
    }
    assert.deepEqual(await modelEntries(server.archiveDir), [], "nothing was written");
    await client.createModel("still serving");
    assert.deepEqual((await client.retrieveModels()).model_infos, [{ model_id: "still serving", user_data: {} }]);
  });

  test("logs stay one JSON object per line and /metrics stays parseable, whatever the id", async (t) => {
    const lines: string[] = [];
    const log = pino({ level: "debug" }, { write: (line: string) => lines.push(line) });
    const archiveDir = await makeArchiveDir();
    const server = await startServer({ ...DEFAULT_TEST_CONFIG, archiveDir }, log, { host: "127.0.0.1", metricsListen: { port: 0, host: "127.0.0.1" } });
    const client = new RegistryClient(`127.0.0.1:${server.port}`);
    t.after(async () => {
      client.close();
      await server.stop();
      await rm(archiveDir, { recursive: true, force: true });
    });
    const accepted = ['say "hi"', "line\u2028separator", "😀 emoji", "{\"json\": true}", "é".repeat(121)];
    const refused = ["back\\slash", "line\nbreak", "nul\0", "quote\"\nnewline"];
    for (const id of accepted) {
      await client.createModel(id);
      await client.publish(id, Buffer.from("data"), { archived: true });
      await client.retrieveData(id, -1);
    }
    for (const id of refused) {
      await assert.rejects(client.createModel(id), { code: grpc.status.INVALID_ARGUMENT });
    }

    const entries = lines.map((line) => {
      assert.equal(line.indexOf("\n"), line.length - 1, `one line: ${JSON.stringify(line)}`);
      return JSON.parse(line) as Record<string, unknown>;
    });
    const loggedIds = entries.filter((entry) => entry.msg === "call finished" && entry.method === "CreateOrUpdateModel").map((entry) => entry.modelId);
    assert.deepEqual(loggedIds, [...accepted, ...refused]);

    assert.ok(server.metricsPort !== undefined);
    const body = await new Promise<string>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port: server.metricsPort, path: "/metrics", agent: false }, (res) => {
        assert.equal(res.statusCode, 200);
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end();
    });
    const label = String.raw`[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"`;
    const sample = new RegExp(String.raw`^[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:${label})(?:,${label})*\})? \S+$`);
    for (const line of body.split("\n")) {
      if (line !== "" && !line.startsWith("#")) {
        assert.match(line, sample);
      }
    }
    for (const id of [...accepted, ...refused]) {
      assert.ok(!body.includes(id), `model ids are not metric labels: ${id}`);
    }
  });
});
