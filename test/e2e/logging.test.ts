import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { Code } from "../../src/errors/index.js";
import { callLogLevel } from "../../src/rpc/call-observer.js";
import { type RunningServer, startServer } from "../../src/server.js";
import { RegistryClient } from "../support/registry-client.js";
import { DEFAULT_TEST_CONFIG, makeArchiveDir } from "../support/test-server.js";

type LogLine = Record<string, unknown>;

const LEVEL = { debug: 20, info: 30, warn: 40, error: 50 } as const;
const SERVICE = "cogmentAPI.ModelRegistrySP";

interface LoggedServer {
  readonly server: RunningServer;
  readonly client: RegistryClient;
  readonly lines: LogLine[];
  readonly archiveDir: string;
  close(): Promise<void>;
}

async function startLoggedServer(overrides: Partial<typeof DEFAULT_TEST_CONFIG> = {}): Promise<LoggedServer> {
  const lines: LogLine[] = [];
  const log = pino(
    { level: "debug" },
    {
      write(line: string) {
        lines.push(JSON.parse(line) as LogLine);
      },
    },
  );
  const archiveDir = await makeArchiveDir();
  const server = await startServer({ ...DEFAULT_TEST_CONFIG, ...overrides, archiveDir }, log, { host: "127.0.0.1" });
  const client = new RegistryClient(`127.0.0.1:${server.port}`);
  return {
    server,
    client,
    lines,
    archiveDir,
    close: async () => {
      client.close();
      await server.stop();
      await rm(archiveDir, { recursive: true, force: true });
    },
  };
}

/** The end-of-call lines (one per call) written since `from`. */
function callLines(lines: readonly LogLine[], from = 0): LogLine[] {
  return lines.slice(from).filter((line) => line.msg === "call finished");
}

/** The only end-of-call line of `method` written since `from`. */
function onlyCallLine(lines: readonly LogLine[], method: string, from = 0): LogLine {
  const found = callLines(lines, from).filter((line) => line.method === method);
  assert.equal(found.length, 1, `one ${method} line: ${JSON.stringify(found)}`);
  return found[0] as LogLine;
}

async function waitForCallLine(lines: readonly LogLine[], method: string, from: number): Promise<LogLine> {
  const deadline = Date.now() + 30_000;
  while (!callLines(lines, from).some((line) => line.method === method)) {
    if (Date.now() > deadline) throw new Error(`no ${method} line`);
    await sleep(10);
  }
  return onlyCallLine(lines, method, from);
}

function assertRequestId(line: LogLine): string {
  assert.equal(typeof line.requestId, "string");
  assert.match(line.requestId as string, /^[0-9a-f]{6}-[0-9a-z]+$/);
  return line.requestId as string;
}

function assertDuration(line: LogLine): void {
  assert.equal(typeof line.durationMs, "number");
  assert.ok((line.durationMs as number) >= 0 && (line.durationMs as number) < 60_000, String(line.durationMs));
}

describe("one log line per call", () => {
  let t: LoggedServer;
  before(async () => {
    t = await startLoggedServer();
  });
  after(() => t.close());

  test("an OK call is one debug line with the method, code, duration, request id and model id", async () => {
    const from = t.lines.length;
    await t.client.createModel("logged", { secret: "not in the log" });
    const line = onlyCallLine(t.lines, "CreateOrUpdateModel", from);
    assert.equal(line.level, LEVEL.debug);
    assert.equal(line.module, "rpc");
    assert.equal(line.grpcService, SERVICE);
    assert.equal(line.code, "OK");
    assert.equal(line.modelId, "logged");
    assert.equal(line.details, undefined, "no status message on OK");
    assertRequestId(line);
    assertDuration(line);
    assert.deepEqual(
      Object.keys(line).sort(),
      ["code", "durationMs", "grpcService", "hostname", "level", "method", "modelId", "module", "msg", "pid", "requestId", "time"],
      "nothing of the request is spread into the line",
    );
  });

  test("NOT_FOUND is an info line with the status message", async () => {
    const from = t.lines.length;
    await assert.rejects(t.client.retrieveVersionInfos({ model_id: "missing" }), { code: grpc.status.NOT_FOUND });
    const line = onlyCallLine(t.lines, "RetrieveVersionInfos", from);
    assert.equal(line.level, LEVEL.info);
    assert.equal(line.code, "NOT_FOUND");
    assert.equal(line.modelId, "missing");
    assert.equal(line.details, 'model "missing" not found');
    assertRequestId(line);
    assertDuration(line);
  });

  test("INVALID_ARGUMENT is an info line", async () => {
    const from = t.lines.length;
    await assert.rejects(t.client.deleteModel("bad/id"), { code: grpc.status.INVALID_ARGUMENT });
    const line = onlyCallLine(t.lines, "DeleteModel", from);
    assert.equal(line.level, LEVEL.info);
    assert.equal(line.code, "INVALID_ARGUMENT");
    assert.equal(line.modelId, "bad/id");
    assert.match(line.details as string, /^model_id "bad\/id" is invalid/);
  });

  test("a request that does not decode is one INVALID_ARGUMENT info line naming the message type, with its request id", async () => {
    const raw = new grpc.Client(`127.0.0.1:${t.server.port}`, grpc.credentials.createInsecure());
    try {
      const identity = (bytes: Buffer): Buffer => bytes;
      // Field 1 (model_id, length-delimited) claiming 100 bytes, followed by 2.
      const garbage = Buffer.from([0x0a, 0x64, 0x61, 0x62]);
      const from = t.lines.length;
      const error = await new Promise<grpc.ServiceError | null>((resolve) =>
        raw.makeUnaryRequest(`/${SERVICE}/RetrieveVersionInfos`, identity, identity, garbage, (e) => resolve(e)),
      );
      assert.equal(error?.code, grpc.status.INVALID_ARGUMENT);
      const line = await waitForCallLine(t.lines, "RetrieveVersionInfos", from);
      assert.equal(line.level, LEVEL.info);
      assert.equal(line.code, "INVALID_ARGUMENT");
      assert.equal(line.modelId, undefined, "nothing is read from a request that did not decode");
      assert.equal(line.details, error?.details);
      assert.match(line.details as string, /^the request is not a valid cogmentAPI\.RetrieveVersionInfosRequest message: .+/);
      assertRequestId(line);
      assertDuration(line);
    } finally {
      raw.close();
    }
  });

  test("RESOURCE_EXHAUSTED is a warn line", async () => {
    await t.client.createModel("huge");
    const from = t.lines.length;
    await assert.rejects(t.client.createVersion({ model_id: "huge", data_size: "18446744073709551615" }, []), {
      code: grpc.status.RESOURCE_EXHAUSTED,
    });
    const line = onlyCallLine(t.lines, "CreateVersion", from);
    assert.equal(line.level, LEVEL.warn);
    assert.equal(line.code, "RESOURCE_EXHAUSTED");
    assert.equal(line.modelId, "huge");
    assert.match(line.details as string, /18446744073709551615 is larger than this server can hold/);
    assertRequestId(line);
  });

  test("a cancelled stream is an info line written when the stream ends", async () => {
    await t.client.createModel("watched");
    const from = t.lines.length;
    const stream = t.client.versionUpdate("watched");
    stream.on("error", () => {});
    const deadline = Date.now() + 30_000;
    while ((await t.client.status(["subscribers"])).statuses.subscribers !== "1") {
      if (Date.now() > deadline) throw new Error("no subscriber");
      await sleep(10);
    }
    assert.equal(callLines(t.lines, from).filter((line) => line.method === "VersionUpdate").length, 0, "nothing while it runs");
    stream.cancel();
    const line = await waitForCallLine(t.lines, "VersionUpdate", from);
    assert.equal(line.level, LEVEL.info);
    assert.equal(line.code, "CANCELLED");
    assert.equal(line.modelId, "watched");
    assertDuration(line);
  });

  test("a streamed upload and download are one line each, never one per chunk", async () => {
    await t.client.createModel("chunky");
    const from = t.lines.length;
    const chunks = Array.from({ length: 20 }, (_, i) => Buffer.alloc(100, i));
    await t.client.createVersion({ model_id: "chunky", data_size: 2000 }, chunks);
    await t.client.retrieveVersionData("chunky", 1);
    const lines = callLines(t.lines, from);
    assert.deepEqual(
      lines.map((line) => [line.method, line.code, line.modelId, line.level]),
      [
        ["CreateVersion", "OK", "chunky", LEVEL.debug],
        ["RetrieveVersionData", "OK", "chunky", LEVEL.debug],
      ],
    );
    assert.equal(t.lines.length - from, 2, "no other line either");
  });

  test("every call has its own request id; calls naming no model have no model id", async () => {
    const from = t.lines.length;
    await t.client.version();
    await t.client.version();
    await t.client.status(["models"]);
    const lines = callLines(t.lines, from);
    assert.deepEqual(
      lines.map((line) => line.method),
      ["Version", "Version", "Status"],
    );
    const ids = lines.map(assertRequestId);
    assert.notEqual(ids[0], ids[1]);
    assert.equal(new Set(ids).size, 3);
    for (const line of lines) {
      assert.equal(line.modelId, undefined);
    }
    const all = callLines(t.lines).map((line) => line.requestId);
    assert.equal(new Set(all).size, all.length, "unique over the whole run");
  });
});

describe("server failures", () => {
  test("INTERNAL is an error line with the status message", async (t) => {
    const s = await startLoggedServer();
    t.after(() => s.close());
    // The archive directory turns into a file: creating a model directory in it fails (ENOTDIR).
    await rm(s.archiveDir, { recursive: true, force: true });
    await writeFile(s.archiveDir, "not a directory");
    const from = s.lines.length;
    const error = await s.client.createModel("doomed").then(
      () => assert.fail("the call should fail"),
      (reason: grpc.ServiceError) => reason,
    );
    assert.equal(error.code, grpc.status.INTERNAL);
    const line = onlyCallLine(s.lines, "CreateOrUpdateModel", from);
    assert.equal(line.level, LEVEL.error);
    assert.equal(line.code, "INTERNAL");
    assert.equal(line.modelId, "doomed");
    assert.equal(line.details, error.details);
    assert.match(line.details as string, /ENOTDIR/);
    assertRequestId(line);
  });
});

describe("the level of a call's line", () => {
  test("follows its status code", () => {
    const expected: Record<keyof typeof Code, "debug" | "info" | "warn" | "error"> = {
      OK: "debug",
      CANCELLED: "info",
      UNKNOWN: "error",
      INVALID_ARGUMENT: "info",
      DEADLINE_EXCEEDED: "warn",
      NOT_FOUND: "info",
      ALREADY_EXISTS: "error",
      PERMISSION_DENIED: "error",
      RESOURCE_EXHAUSTED: "warn",
      FAILED_PRECONDITION: "error",
      ABORTED: "error",
      OUT_OF_RANGE: "error",
      UNIMPLEMENTED: "error",
      INTERNAL: "error",
      UNAVAILABLE: "warn",
      DATA_LOSS: "error",
      UNAUTHENTICATED: "error",
    };
    for (const [name, code] of Object.entries(Code)) {
      assert.equal(callLogLevel(code), expected[name as keyof typeof Code], name);
    }
    assert.equal(callLogLevel(99), "error");
  });

  test("lines below the logger's level cost nothing and are not written", async (t) => {
    const lines: LogLine[] = [];
    const log = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
    const archiveDir = await makeArchiveDir();
    const server = await startServer({ ...DEFAULT_TEST_CONFIG, archiveDir }, log, { host: "127.0.0.1" });
    const client = new RegistryClient(`127.0.0.1:${server.port}`);
    t.after(async () => {
      client.close();
      await server.stop();
      await rm(archiveDir, { recursive: true, force: true });
    });
    const from = lines.length;
    await client.createModel("quiet");
    await assert.rejects(client.deleteModel("absent"), { code: grpc.status.NOT_FOUND });
    assert.deepEqual(
      callLines(lines, from).map((line) => [line.method, line.code, line.level]),
      [["DeleteModel", "NOT_FOUND", LEVEL.info]],
    );
  });
});
