import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { packageInfo } from "../../src/package-info.js";
import { RegistryClient } from "../support/registry-client.js";
import { MAIN_FILE, spawnServer } from "../support/server-process.js";

/**
 * Loaded into the server with NODE_OPTIONS=--require: once the gRPC server listens (Node's
 * `net.server.listen` tracing channel), it writes the built-in modules loaded so far
 * (process.moduleLoadList) and the files the module loader loaded (a registerHooks load hook).
 * At that moment the start is done with what it loads; the work deferred after listening
 * (Core.startDeferred, 100 ms later) has not run.
 */
const RECORDER = (out: string): string => `
const fs = process.getBuiltinModule("node:fs");
const files = [];
process.getBuiltinModule("node:module").registerHooks({
  load(url, context, nextLoad) {
    files.push(url);
    return nextLoad(url, context);
  },
});
let written = false;
process.getBuiltinModule("node:diagnostics_channel").subscribe("tracing:net.server.listen:asyncEnd", () => {
  if (!written) {
    written = true;
    fs.writeFileSync(${JSON.stringify(out)}, JSON.stringify({ builtins: process.moduleLoadList, files }));
  }
});
`;

/** What the start must not load (docs/performance.md, "Start-up, seventh pass"; scripts/bundle.ts checks the bundle's import graph). */
const BUILTINS_NOT_AT_START = [
  "NativeModule v8", // the GC hook's setFlagsFromString (expose-gc.ts), taken when the hook is made
  "NativeModule vm",
  "NativeModule internal/util/parse_args/parse_args", // node:util's ESM facade reads its lazy exports
  "NativeModule internal/util/diff",
];

/** Libraries the start leaves for their first use, as esbuild names their code in the bundle's files. */
const LIBRARIES_NOT_AT_START = ["// node_modules/hash-wasm/", "// node_modules/yaml/"];

test("the bundle's start loads neither hash-wasm, the yaml package, node:v8, node:vm nor node:util's facade; its first calls are served", async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), "mr-startup-modules-"));
  const recorder = path.join(dir, "recorder.cjs");
  const record = path.join(dir, "record.json");
  await writeFile(recorder, RECORDER(record));
  const server = await spawnServer({
    COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: path.join(dir, "archive"),
    NODE_OPTIONS: `--require ${recorder}`,
  });
  const client = new RegistryClient(`127.0.0.1:${server.port}`);
  t.after(async () => {
    client.close();
    server.child.kill("SIGKILL");
    await server.exited;
    await rm(dir, { recursive: true, force: true });
  });

  assert.deepEqual(await client.version(), {
    versions: [
      { name: "model_registry", version: packageInfo.version },
      { name: packageInfo.name, version: packageInfo.version },
    ],
  });

  const { builtins, files } = JSON.parse(await readFile(record, "utf8")) as { builtins: string[]; files: string[] };
  // The record is of a listening server (http2 loaded) that ran the bundle (main.js and its chunks).
  assert.ok(builtins.includes("NativeModule http2"), "http2 was loaded by the time the server listened");
  assert.ok(files.includes(pathToFileURL(MAIN_FILE).href), `main.js among the loaded files: ${files.join(", ")}`);
  const bundleFiles = files.filter((url) => url.startsWith(pathToFileURL(path.dirname(MAIN_FILE)).href));
  assert.ok(bundleFiles.length >= 4, `the bundle's chunks among the loaded files: ${bundleFiles.join(", ")}`);

  assert.deepEqual(
    BUILTINS_NOT_AT_START.filter((name) => builtins.includes(name)),
    [],
  );
  const holdingLibraries: string[] = [];
  for (const url of bundleFiles) {
    const text = await readFile(fileURLToPath(url), "utf8");
    for (const library of LIBRARIES_NOT_AT_START.filter((marker) => text.includes(marker))) {
      holdingLibraries.push(`${path.basename(fileURLToPath(url))}: ${library}`);
    }
  }
  assert.deepEqual(holdingLibraries, []);

  // The yaml package, left out of the start, writes the model's info file as before (byte for byte the
  // original's form), whether the server loaded it after listening or this call does.
  await client.createModel("first_model", { step: "1000", b: "x" });
  assert.equal(
    await readFile(path.join(dir, "archive", "first_model", "first_model.yaml"), "utf8"),
    "model_id: first_model\nuser_data:\n  b: x\n  step: \"1000\"\n",
  );
  assert.deepEqual((await client.retrieveModels()).model_infos, [{ model_id: "first_model", user_data: { b: "x", step: "1000" } }]);
});
