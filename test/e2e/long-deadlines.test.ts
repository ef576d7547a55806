/*
 * Client deadlines longer than a Node.js timer can wait (2^31 - 1 ms, ~24.8 days): grpc-js reads
 * grpc-timeout with a 32-bit truncation, so before the divert listener shortened such a timeout,
 * a 30-day deadline ("2592000S") failed every call at once with DEADLINE_EXCEEDED.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type TestServer, startTestServer } from "../support/test-server.js";

const THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000;
const thirtyDays = (): Date => new Date(Date.now() + THIRTY_DAYS_MS);

type Callback = (error: { code: number; details: string } | null, reply?: unknown) => void;
type RawMethod = (...args: unknown[]) => NodeJS.EventEmitter & { write(message: object): void; end(): void; cancel(): void };

describe("a 30-day client deadline", () => {
  let server: TestServer;
  let raw: Record<string, RawMethod>;
  before(async () => {
    server = await startTestServer();
    raw = server.client.raw as unknown as Record<string, RawMethod>;
    await server.client.createModel("m");
  });
  after(() => server.close());

  test("CreateVersion (served below grpc-js) succeeds", async () => {
    const outcome = await new Promise<string>((resolve) => {
      const callback: Callback = (error) => resolve(error === null ? "OK" : `${error.code} ${error.details}`);
      const call = raw.CreateVersion?.call(server.client.raw, { deadline: thirtyDays() }, callback);
      call?.write({ header: { version_info: { model_id: "m", data_size: "5" } } });
      setTimeout(() => {
        call?.write({ body: { data_chunk: Buffer.from("hello") } });
        call?.end();
      }, 200);
    });
    assert.equal(outcome, "OK");
  });

  test("a unary call (RetrieveModels, served by grpc-js) succeeds", async () => {
    const outcome = await new Promise<string>((resolve) => {
      const callback: Callback = (error, reply) =>
        resolve(error === null ? JSON.stringify((reply as { model_infos: { model_id: string }[] }).model_infos.map((info) => info.model_id)) : `${error.code} ${error.details}`);
      raw.RetrieveModels?.call(server.client.raw, {}, { deadline: thirtyDays() }, callback);
    });
    assert.equal(outcome, '["m"]');
  });

  test("VersionUpdate (served by grpc-js) receives the next version", async () => {
    const stream = raw.VersionUpdate?.call(server.client.raw, { model_id: "m" }, { deadline: thirtyDays() });
    assert.ok(stream !== undefined);
    const versionsBefore = (await server.client.retrieveVersionInfos({ model_id: "m" })).version_infos.length;
    const received = new Promise<string>((resolve) => {
      // The first message is the latest version already there (if any); the one published below comes next.
      stream.on("data", (reply: { version_info: { version_number: number } }) => {
        if (reply.version_info.version_number > versionsBefore) {
          resolve(`version ${reply.version_info.version_number}`);
        }
      });
      stream.on("error", (error: { code: number; details: string }) => resolve(`${error.code} ${error.details}`));
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    await server.client.publish("m", Buffer.from("x"));
    const outcome = await received;
    stream.cancel();
    assert.equal(outcome, `version ${versionsBefore + 1}`);
  });
});
