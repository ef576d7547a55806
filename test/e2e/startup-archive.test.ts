import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { CLOCK_TICK_MARGIN_MS } from "../../src/state/in-process-registry-state.js";
import { leftoversStillThere } from "../support/leftover-files.js";
import { makeArchiveDir, startTestServer } from "../support/test-server.js";

const MODELS = 40;
const VERSIONS = 25;
const BASE_SECONDS = Date.UTC(2021, 9, 1, 20, 10, 5) / 1000;

const modelId = (m: number): string => `model-${String(m).padStart(2, "0")}`;
const versionBase = (id: string, v: number): string => `${id}-v${String(v).padStart(6, "0")}`;
const dataOf = (m: number, v: number): Buffer => Buffer.from(`data of ${m}/${v}`.repeat(v));
const secondsOf = (m: number, v: number): number => BASE_SECONDS + m * VERSIONS + v;

/** The model info of model m, in one of the shapes found in archives: the writers' own, and others. */
function modelInfo(m: number): { text: string; userData: Record<string, string> } {
  const id = modelId(m);
  switch (m % 4) {
    case 0:
      return { text: `model_id: ${id}\nuser_data:\n  framework: torch\n  type: dqn\n`, userData: { framework: "torch", type: "dqn" } };
    case 1:
      return { text: `model_id: ${id}\nuser_data: {}\n`, userData: {} };
    case 2:
      // Quoted keys and values, as yaml.v2 writes strings YAML would read as something else.
      return { text: `model_id: ${id}\nuser_data:\n  "10": "true"\n  note: 'it''s'\n`, userData: { "10": "true", note: "it's" } };
    default:
      // Comments and a flow mapping: the full YAML library's path.
      return { text: `# written by hand\nmodel_id: ${id} # the id\nuser_data: {a: "1", b: x}\n`, userData: { a: "1", b: "x" } };
  }
}

test("a large archive at start: every model and version served as written, leftovers removed", async (t) => {
  const archiveDir = await makeArchiveDir();
  const running: { server?: Awaited<ReturnType<typeof startTestServer>> } = {};
  // The server is stopped before its archive is removed: a running server may still write into it
  // (the model journal is made just after listening).
  t.after(async () => {
    await running.server?.close();
    await rm(archiveDir, { recursive: true, force: true });
  });
  const leftovers: string[] = [];
  for (let m = 0; m < MODELS; m++) {
    const id = modelId(m);
    const dir = path.join(archiveDir, id);
    await mkdir(dir);
    await writeFile(path.join(dir, `${id}.yaml`), modelInfo(m).text);
    for (let v = 1; v <= VERSIONS; v++) {
      const data = dataOf(m, v);
      const info =
        `model_id: ${id}\nversion_number: ${v}\ncreation_timestamp: ${new Date(secondsOf(m, v) * 1000).toISOString().slice(0, 19)}.${String(v).padStart(9, "0")}Z\n` +
        `data_hash: ${createHash("sha256").update(data).digest("base64")}\ndata_size: ${data.length}\nuser_data:\n  step: "${v * 1000}"\n`;
      await writeFile(path.join(dir, `${versionBase(id, v)}.data`), data);
      await writeFile(path.join(dir, `${versionBase(id, v)}.yaml`), info);
    }
    if (m % 7 === 0) {
      const leftover = path.join(dir, `.${versionBase(id, VERSIONS + 1)}.data.tmp-0123456789abcdef`);
      await writeFile(leftover, "half a version");
      leftovers.push(leftover);
    }
  }
  // What remains of a model whose deletion was interrupted.
  await mkdir(path.join(archiveDir, ".gone.tmp-0123456789abcdef"));
  await writeFile(path.join(archiveDir, ".gone.tmp-0123456789abcdef", "gone.yaml"), "model_id: gone\n");

  // The clean-up keeps what changed since the start (less a margin for the kernel's coarse clock): a
  // crash's leftovers are older than that, as a new process takes longer to start than the margin.
  await sleep(CLOCK_TICK_MARGIN_MS + 50);
  const server = await startTestServer({ archiveDir });
  running.server = server;
  const { client } = server;

  const listed = await client.retrieveModels({});
  assert.deepEqual(
    listed.model_infos.map((model) => [model.model_id, model.user_data]),
    Array.from({ length: MODELS }, (_, m) => [modelId(m), modelInfo(m).userData]),
  );
  // Removed in the background once the listing is done, not before the server serves.
  assert.deepEqual(await leftoversStillThere([...leftovers, path.join(archiveDir, ".gone.tmp-0123456789abcdef")]), []);

  // Several models' first reads at once, each complete.
  const sampled = [0, 13, 26, 39];
  const replies = await Promise.all(sampled.map((m) => client.retrieveVersionInfos({ model_id: modelId(m) })));
  for (const [i, reply] of replies.entries()) {
    const m = sampled[i] as number;
    assert.deepEqual(
      reply.version_infos,
      Array.from({ length: VERSIONS }, (_, k) => {
        const v = k + 1;
        const data = dataOf(m, v);
        return {
          model_id: modelId(m),
          version_number: v,
          creation_timestamp: String(BigInt(secondsOf(m, v)) * 1_000_000_000n + BigInt(v)),
          archived: true,
          data_hash: createHash("sha256").update(data).digest("base64"),
          data_size: String(data.length),
          user_data: { step: String(v * 1000) },
        };
      }),
    );
  }
  assert.deepEqual(await client.retrieveData(modelId(39), VERSIONS), dataOf(39, VERSIONS));
});
