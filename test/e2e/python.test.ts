// Second opinion from a gRPC stack we did not write: Debian's python3-grpcio + python3-protobuf
// (test/python/registry_check.py) against a real server on 127.0.0.1.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { test } from "node:test";
import { packageInfo } from "../../src/package-info.js";
import { startTestServer } from "../support/test-server.js";

const PYTHON = "/usr/bin/python3"; // Debian's: a pyenv python on PATH does not see dist-packages
// The .py is not compiled by tsc: dist/test/e2e/ → ../../../test/python/.
const SCRIPT = path.resolve(import.meta.dirname, "../../../test/python/registry_check.py");
const PROTO_DIR = path.resolve(import.meta.dirname, "../../../proto");
const INSTALL_HINT = "run test/python/install-deps.sh (as root) to install python3-grpcio, python3-protobuf and python3-grpc-tools";
const CHUNK_HASH = "jY0g3VkUK62ILPr2JuaW5g7uQi0EcJVZJu8IYp3yfhI=";
const BIG_SIZE = 3 * 1024 * 1024 + 5;
const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

/** Why the Python check cannot run here, or undefined when it can. */
function missingPython(): string | undefined {
  const probe = spawnSync(PYTHON, [SCRIPT, "--check-deps"], { encoding: "utf8", env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" } });
  if (probe.error !== undefined) {
    return `${PYTHON} is not runnable (${probe.error.message})`;
  }
  return probe.status === 0 ? undefined : `${PYTHON}: ${(probe.stdout + probe.stderr).trim()}`;
}

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Asynchronous on purpose: the server runs in this process's event loop. */
function runPython(args: readonly string[], timeoutMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
      timeout: timeoutMs,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text));
    child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const missing = missingPython();
const skip = missing !== undefined && process.env.CI === undefined ? `${missing}; ${INSTALL_HINT}` : false;

test("Python grpcio client: models, versions, streams, errors, Version, Status, DeleteModel", { skip, timeout: 120_000 }, async () => {
  if (missing !== undefined) {
    assert.fail(`CI is set but the Python gRPC check cannot run: ${missing}; ${INSTALL_HINT}`);
  }
  const server = await startTestServer();
  const scratch = await mkdtemp(path.join(tmpdir(), "mr-python-"));
  try {
    const run = await runPython([SCRIPT, server.address, PROTO_DIR, scratch], 100_000);
    assert.equal(run.code, 0, `registry_check.py exited with ${run.code ?? run.signal}\nstderr:\n${run.stderr}\nstdout:\n${run.stdout}`);
    const r = JSON.parse(run.stdout) as Record<string, unknown> & {
      create_version_small: { creation_timestamp: string };
      create_version_big: { creation_timestamp: string };
      version_update: { second: { creation_timestamp: string } };
      status_all: { keys: string[]; overall_load: string; models: string; subscribers: string; uploads_in_flight: string };
      python_stack: Record<string, string>;
      names: { listed: string[]; all_ok: boolean; refused: { code: string; details: string }[]; after_delete: string[] };
    };

    const big = await readFile(path.join(scratch, "big_version.bin"));
    assert.equal(big.length, BIG_SIZE);
    const bigHash = sha256(big);
    const v1 = {
      model_id: "py-model",
      version_number: 1,
      creation_timestamp: r.create_version_small.creation_timestamp,
      archived: false,
      data_hash: CHUNK_HASH,
      data_size: "14",
      user_data: { step: "1" },
    };
    const v2 = {
      model_id: "py-model",
      version_number: 2,
      creation_timestamp: r.create_version_big.creation_timestamp,
      archived: true,
      data_hash: bigHash,
      data_size: String(BIG_SIZE),
      user_data: { size: "big" },
    };
    const v3 = {
      model_id: "py-model",
      version_number: 3,
      creation_timestamp: r.version_update.second.creation_timestamp,
      archived: false,
      data_hash: sha256(Buffer.from("update")),
      data_size: "6",
      user_data: {},
    };
    for (const v of [v1, v2, v3]) {
      assert.match(v.creation_timestamp, /^\d{19}$/, "nanoseconds since the epoch");
    }
    assert.ok(BigInt(v1.creation_timestamp) <= BigInt(v2.creation_timestamp));
    assert.ok(BigInt(v2.creation_timestamp) <= BigInt(v3.creation_timestamp));

    assert.deepEqual(r.retrieve_models_by_id, {
      model_infos: [{ model_id: "py-model", user_data: { owner: "python", stack: "grpcio" } }],
      next_model_handle: "1",
    });
    assert.deepEqual(r.retrieve_models_listing, {
      all: ["py-model", "py-other"],
      all_next_model_handle: "2",
      pages: [
        [["py-model"], "1"],
        [["py-other"], "2"],
        [[], "2"],
      ],
    });
    assert.deepEqual(r.create_version_small, v1);
    assert.deepEqual(r.create_version_big, { ...v2, bodies_sent: 4 });
    assert.deepEqual(r.retrieve_version_infos_latest, { version_infos: [v2], next_version_handle: "3" });
    assert.deepEqual(r.retrieve_version_infos_listing, {
      all: [v1, v2],
      all_next_version_handle: "3",
      pages: [
        [[1], "2"],
        [[2], "3"],
        [[], "3"],
      ],
    });
    assert.deepEqual(r.retrieve_version_data, {
      small: "chunk_1chunk_2",
      small_chunk_sizes: [14],
      big_chunk_sizes: [2 * 1024 * 1024, BIG_SIZE - 2 * 1024 * 1024], // sentChunkSize 2 MiB
      big_size: BIG_SIZE,
      big_sha256: bigHash,
      big_equal: true,
    });
    assert.deepEqual(r.not_found, { code: "NOT_FOUND", details: 'model "py-missing" not found' });
    assert.deepEqual(r.invalid_argument, {
      code: "INVALID_ARGUMENT",
      details: "CreateVersionRequestChunk: the first message must be a header, a body was received",
    });
    assert.deepEqual(r.version_update, {
      first: v2,
      second: v3,
      subscribers_while_open: "1",
      after_cancel: "CANCELLED",
      subscribers_after_cancel: "0",
    });
    assert.deepEqual(r.version, [
      { name: "model_registry", version: packageInfo.version },
      { name: packageInfo.name, version: packageInfo.version },
    ]);
    for (const key of ["overall_load", "models", "subscribers", "uploads_in_flight", "cache_used_bytes", "cached_versions"]) {
      assert.ok(r.status_all.keys.includes(key), `Status ["*"] lacks ${key}: ${r.status_all.keys.join(", ")}`);
    }
    assert.match(r.status_all.overall_load, /^(\d|[1-9]\d|100)$/, "an integer percentage, as the Cogment Directory parses it");
    const { models, subscribers, uploads_in_flight } = r.status_all;
    assert.deepEqual({ models, subscribers, uploads_in_flight }, { models: "2", subscribers: "0", uploads_in_flight: "0" });
    assert.deepEqual(r.status_named, { models: "2" });
    assert.deepEqual(r.version_update_on_delete, {
      followed: 3,
      code: "NOT_FOUND",
      details: 'model "py-model" was deleted: this VersionUpdate stream has no more versions to send',
    });
    assert.deepEqual(r.deleted_retrieve, { code: "NOT_FOUND", details: 'model "py-model" not found' });
    assert.deepEqual(r.deleted_again, { code: "NOT_FOUND", details: 'model "py-model" not found' });
    assert.deepEqual(r.models_after_delete, ["py-other"]);
    assert.deepEqual(r.models_at_end, []);
    assert.equal(typeof r.python_stack.grpcio, "string");

    // Model ids the original accepts: every RPC from Python; listed in UTF-8 byte order.
    assert.deepEqual(r.names.listed, ["#1 = 100%, ok", "a+b", "a@b", "agent:v1", "modèle", "my model", "é".repeat(121), "\uFF61", "\u{1F600} emoji"]);
    assert.equal(r.names.all_ok, true);
    const rule = "expected 1 to 242 bytes of UTF-8, not starting with '.', without '/', '\\' or control characters (U+0000 to U+001F, U+007F)";
    assert.deepEqual(
      r.names.refused,
      [
        ['""', "it is empty"],
        ['".."', 'it is ".."'],
        ['".hidden"', "it starts with '.' (reserved for the registry's own files)"],
        ['"a/b"', "it contains '/'"],
        ['"a\\\\b"', "it contains '\\'"],
        ['"line\\nbreak"', "it contains the control character U+000A"],
        [`"${"é".repeat(64)}"… (244 bytes of UTF-8)`, "it is 244 bytes of UTF-8, more than 242"],
      ].map(([shown, problem]) => ({ code: "INVALID_ARGUMENT", details: `model_info.model_id ${shown} is invalid: ${problem}; ${rule}` })),
    );
    assert.deepEqual(r.names.after_delete, []);

    // And the server agrees, through our own client, that nothing is left.
    assert.deepEqual((await server.client.retrieveModels()).model_infos, []);
  } finally {
    await server.close();
    await rm(scratch, { recursive: true, force: true });
  }
});

test("Python grpcio client: VersionUpdate ends with UNAVAILABLE, saying why, when the server stops", { skip, timeout: 60_000 }, async (t) => {
  if (missing !== undefined) {
    assert.fail(`CI is set but the Python gRPC check cannot run: ${missing}; ${INSTALL_HINT}`);
  }
  const server = await startTestServer();
  const scratch = await mkdtemp(path.join(tmpdir(), "mr-python-"));
  t.after(async () => {
    await server.close();
    await rm(scratch, { recursive: true, force: true });
  });
  await server.client.createModel("py-follow");
  await server.client.publish("py-follow", Buffer.from("followed"));
  const child = spawn(PYTHON, [SCRIPT, "--follow-until-end", server.address, PROTO_DIR, scratch, "py-follow"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
    timeout: 50_000,
  });
  t.after(() => child.kill("SIGKILL"));
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
  const lines: string[] = [];
  let wake = (): void => {};
  createInterface({ input: child.stdout }).on("line", (line) => {
    lines.push(line);
    wake();
  });
  while (lines.length === 0) {
    await Promise.race([new Promise<void>((resolve) => (wake = resolve)), exited]);
    assert.ok(lines.length > 0 || child.exitCode === null, `registry_check.py ended before following: ${stderr}`);
  }
  assert.deepEqual(JSON.parse(lines[0] ?? ""), { followed: 1 });
  await server.stop();
  assert.equal(await exited, 0, stderr);
  assert.deepEqual(JSON.parse(lines[1] ?? ""), {
    code: "UNAVAILABLE",
    details: 'the model registry is stopping: VersionUpdate of model "py-follow" ended; call it again once the server is back',
  });
});
