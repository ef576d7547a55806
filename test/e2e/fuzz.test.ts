import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { startTestServer } from "../support/test-server.js";

const MESSAGES = 10_800;
const CONCURRENCY = 32;
const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");
const identity = (buffer: Buffer): Buffer => buffer;

const definition = loadSync(["cogment/api/model_registry.proto"], {
  includeDirs: [fileURLToPath(new URL("../../../proto", import.meta.url))],
  keepCase: true,
  longs: String,
  defaults: true,
  oneofs: true,
});
const service = definition["cogmentAPI.ModelRegistrySP"] as unknown as Record<
  string,
  { path: string; requestStream: boolean; responseStream: boolean; requestSerialize: (value: object) => Buffer }
>;

/** Valid requests of each method, the seeds that get mutated. */
const SEEDS: Record<string, object[]> = {
  CreateOrUpdateModel: [{ model_info: { model_id: "fz", user_data: { a: "b" } } }, { model_info: { model_id: "fz2" } }],
  DeleteModel: [{ model_id: "fz2" }],
  RetrieveModels: [{}, { model_ids: ["fz"], models_count: 1, model_handle: "0" }],
  CreateVersion: [
    { header: { version_info: { model_id: "fz", data_size: "3", archived: true } } },
    { header: { version_info: { model_id: "fz", data_size: "2", data_hash: "x", user_data: { s: "1" } } } },
    { body: { data_chunk: Buffer.from("ab") } },
  ],
  RetrieveVersionInfos: [{ model_id: "fz", version_numbers: [-1, 1], versions_count: 2, version_handle: "1" }],
  RetrieveVersionData: [{ model_id: "fz", version_number: -1 }],
  VersionUpdate: [{ model_id: "fz" }],
  Version: [{}],
  Status: [{ names: ["*", "models"] }],
};

function createRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

function mutate(seed: Buffer, random: () => number): Buffer {
  const pick = random();
  const int = (n: number): number => Math.floor(random() * n);
  if (pick < 0.2) {
    return Buffer.from(Array.from({ length: int(64) }, () => int(256)));
  }
  const bytes = [...seed];
  const edits = 1 + int(4);
  for (let i = 0; i < edits; i++) {
    const kind = random();
    const at = int(bytes.length + 1);
    if (kind < 0.35 && bytes.length > 0) bytes[Math.min(at, bytes.length - 1)] = int(256);
    else if (kind < 0.55) bytes.splice(at, 0, int(256));
    else if (kind < 0.7) bytes.splice(at);
    else if (kind < 0.85) bytes.push(...bytes.slice(0, int(bytes.length + 1)));
    else bytes.splice(at, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01);
  }
  return Buffer.from(bytes);
}

test(`fuzz: ${MESSAGES} random and mutated messages over every method; the server keeps serving, nothing stored is hurt`, async (t) => {
  const server = await startTestServer({ cacheMaxBytes: 64 * 1024 * 1024 });
  t.after(() => server.close());
  const { client } = server;
  await client.createModel("keeper-model-x");
  const archived = Buffer.from("archived data that must survive");
  const transient = Buffer.alloc(100_000, 9);
  await client.publish("keeper-model-x", archived, { archived: true });
  await client.publish("keeper-model-x", transient);
  await client.createModel("fz");
  await client.publish("fz", Buffer.from("abc"));

  const raw = new grpc.Client(server.address, grpc.credentials.createInsecure());
  t.after(() => raw.close());
  const random = createRandom(7);
  const methods = Object.keys(SEEDS);
  const seeds = Object.fromEntries(
    methods.map((name) => [name, (SEEDS[name] ?? []).map((value) => service[name]?.requestSerialize(value) as Buffer)]),
  );
  const codes = new Map<number, number>();
  const count = (code: number): void => {
    codes.set(code, (codes.get(code) ?? 0) + 1);
  };

  const one = (index: number): Promise<void> => {
    const name = methods[index % methods.length] as string;
    const method = service[name];
    assert.ok(method);
    const seedList = seeds[name] as Buffer[];
    const message = (): Buffer => mutate(seedList[Math.floor(random() * seedList.length)] as Buffer, random);
    return new Promise<void>((resolve) => {
      let settled = false;
      const done = (error: grpc.ServiceError | null): void => {
        if (!settled) {
          settled = true;
          count(error ? error.code : 0);
          resolve();
        }
      };
      if (method.requestStream) {
        const call = raw.makeClientStreamRequest(method.path, identity, identity, done);
        const n = 1 + Math.floor(random() * 5);
        for (let i = 0; i < n; i++) call.write(message());
        call.end();
      } else if (method.responseStream) {
        const call = raw.makeServerStreamRequest(method.path, identity, identity, message());
        const timer = setTimeout(() => call.cancel(), 20);
        call.on("data", () => {});
        call.on("error", (error: grpc.ServiceError) => {
          clearTimeout(timer);
          done(error);
        });
        call.on("end", () => {
          clearTimeout(timer);
          done(null);
        });
      } else {
        raw.makeUnaryRequest(method.path, identity, identity, message(), done);
      }
    });
  };

  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < MESSAGES) await one(next++);
    }),
  );

  const total = [...codes.values()].reduce((a, b) => a + b, 0);
  assert.equal(total, MESSAGES);
  assert.ok((codes.get(grpc.status.INVALID_ARGUMENT) ?? 0) > 100, `codes seen: ${JSON.stringify([...codes])}`);
  assert.equal(codes.get(grpc.status.INTERNAL) ?? 0, 0, `no INTERNAL errors: ${JSON.stringify([...codes])}`);
  assert.equal(codes.get(grpc.status.UNKNOWN) ?? 0, 0, `no UNKNOWN errors: ${JSON.stringify([...codes])}`);

  // Still serving, and what was stored is intact.
  const infos = await client.retrieveVersionInfos({ model_id: "keeper-model-x" });
  assert.deepEqual(infos.version_infos.map((v) => [v.version_number, v.data_hash]), [
    [1, sha256(archived)],
    [2, sha256(transient)],
  ]);
  assert.ok((await client.retrieveData("keeper-model-x", 1)).equals(archived));
  assert.ok((await client.retrieveData("keeper-model-x", 2)).equals(transient));
  const stats = await client.status(["cache_reserved_bytes", "uploads_in_flight"]);
  assert.deepEqual(stats.statuses, { cache_reserved_bytes: "0", uploads_in_flight: "0" });
});
