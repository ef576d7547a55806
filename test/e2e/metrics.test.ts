import assert from "node:assert/strict";
import { request } from "node:http";
import { connect as connectHttp2, constants as http2Constants } from "node:http2";
import { type Server as NetServer, createServer as createNetServer } from "node:net";
import type { AddressInfo } from "node:net";
import { rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { createLogger } from "../../src/logger.js";
import { type RunningServer, type ServerConfig, type ServerOptions, startServer } from "../../src/server.js";
import { RegistryClient } from "../support/registry-client.js";
import { DEFAULT_TEST_CONFIG, makeArchiveDir } from "../support/test-server.js";

const SERVICE = "cogmentAPI.ModelRegistrySP";
const KiB = 1024;

interface MetricsServer {
  readonly server: RunningServer;
  readonly client: RegistryClient;
  /** GET /metrics, asserting a 200. */
  scrape(): Promise<Metrics>;
  close(): Promise<void>;
}

interface HttpReply {
  readonly status: number;
  readonly contentType: string | undefined;
  readonly body: string;
}

function httpRequest(port: number, path: string, method = "GET"): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, contentType: res.headers["content-type"], body: Buffer.concat(chunks).toString("utf8") }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** The samples of one scrape of the Prometheus text format. */
class Metrics {
  readonly samples: { name: string; labels: Record<string, string>; value: number }[] = [];

  constructor(readonly text: string) {
    for (const line of text.split("\n")) {
      if (line === "" || line.startsWith("#")) {
        continue;
      }
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      assert.ok(match, `malformed sample line: ${line}`);
      const labels: Record<string, string> = {};
      for (const label of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        labels[label[1] as string] = label[2] as string;
      }
      this.samples.push({ name: match[1] as string, labels, value: Number(match[3]) });
    }
  }

  /** The value of the sample with exactly this name and label set; undefined if absent. */
  get(name: string, labels: Record<string, string> = {}): number | undefined {
    const wanted = JSON.stringify(Object.entries(labels).sort());
    const found = this.samples.filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === wanted);
    assert.ok(found.length <= 1, `${found.length} samples ${name} ${wanted}`);
    return found[0]?.value;
  }

  /** Like get() but the sample must be there. */
  value(name: string, labels: Record<string, string> = {}): number {
    const value = this.get(name, labels);
    assert.notEqual(value, undefined, `no sample ${name}${JSON.stringify(labels)}`);
    return value as number;
  }
}

const grpcLabels = (type: string, method: string): Record<string, string> => ({
  grpc_type: type,
  grpc_service: SERVICE,
  grpc_method: method,
});

/** The change of every listed sample between two scrapes (an absent sample counts as 0). */
function delta(before: Metrics, after: Metrics, name: string, labels: Record<string, string> = {}): number {
  return after.value(name, labels) - (before.get(name, labels) ?? 0);
}

async function startMetricsServer(
  overrides: Partial<ServerConfig> = {},
  options: ServerOptions = { metricsListen: { port: 0, host: "127.0.0.1" } },
): Promise<MetricsServer> {
  const archiveDir = await makeArchiveDir();
  const server = await startServer({ ...DEFAULT_TEST_CONFIG, ...overrides, archiveDir }, createLogger("silent"), {
    host: "127.0.0.1",
    ...options,
  });
  const client = new RegistryClient(`127.0.0.1:${server.port}`);
  return {
    server,
    client,
    scrape: async () => {
      assert.ok(server.metricsPort !== undefined, "the metrics endpoint is on");
      const reply = await httpRequest(server.metricsPort, "/metrics");
      assert.equal(reply.status, 200);
      return new Metrics(reply.body);
    },
    close: async () => {
      client.close();
      await server.stop();
      await rm(archiveDir, { recursive: true, force: true });
    },
  };
}

function filled(size: number, seed: number): Buffer {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + seed) % 256;
  return data;
}

async function until(predicate: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Listening TCP sockets of this process (once the loop has run its close callbacks, so closed ones are gone). */
async function tcpServers(): Promise<number> {
  await sleep(10);
  return process.getActiveResourcesInfo().filter((name) => name === "TCPServerWrap").length;
}

describe("the Prometheus endpoint", () => {
  let t: MetricsServer;
  before(async () => {
    // Small reply chunks: a 3500-byte version goes out as 4 messages.
    t = await startMetricsServer({ sentChunkSize: 1024 });
  });
  after(() => t.close());

  test("GET /metrics answers the Prometheus text format, with every method at zero before its first call", async () => {
    assert.ok(t.server.metricsPort !== undefined && t.server.metricsPort > 0);
    // The worker threads start a moment after the server listens (server.ts, DEFERRED_START_MS).
    await until(async () => t.server.workerPool.threads().length >= 1, "the worker threads' deferred start");
    const reply = await httpRequest(t.server.metricsPort, "/metrics");
    assert.equal(reply.status, 200);
    assert.equal(reply.contentType, "text/plain; version=0.0.4; charset=utf-8");
    const metrics = new Metrics(reply.body);
    for (const [type, method] of [
      ["unary", "CreateOrUpdateModel"],
      ["unary", "DeleteModel"],
      ["unary", "RetrieveModels"],
      ["client_stream", "CreateVersion"],
      ["unary", "RetrieveVersionInfos"],
      ["server_stream", "RetrieveVersionData"],
      ["server_stream", "VersionUpdate"],
      ["unary", "Version"],
      ["unary", "Status"],
    ] as const) {
      const labels = grpcLabels(type, method);
      assert.equal(metrics.get("grpc_server_started_total", labels), 0, method);
      assert.equal(metrics.get("grpc_server_msg_received_total", labels), 0, method);
      assert.equal(metrics.get("grpc_server_msg_sent_total", labels), 0, method);
      assert.equal(metrics.get("grpc_server_handling_seconds_count", labels), 0, method);
      assert.equal(metrics.get("grpc_server_handling_seconds_bucket", { ...labels, le: "+Inf" }), 0, method);
    }
    for (const type of ["counter", "histogram"]) {
      assert.ok(reply.body.includes(`# TYPE grpc_server_${type === "counter" ? "handled_total" : "handling_seconds"} ${type}\n`));
    }
    assert.equal(metrics.get("cogment_model_registry_cache_evictions_total", { reason: "size" }), 0);
    assert.equal(metrics.get("cogment_model_registry_cache_evictions_total", { reason: "expired" }), 0);
    assert.equal(metrics.get("cogment_model_registry_cache_max_bytes"), DEFAULT_TEST_CONFIG.cacheMaxBytes);
    assert.ok(metrics.value("cogment_model_registry_worker_pool_threads") >= 1);
    assert.equal(metrics.value("cogment_model_registry_worker_pool_queue_size"), 0);
    const utilization = metrics.value("cogment_model_registry_worker_pool_utilization");
    assert.ok(utilization >= 0 && utilization <= 1, String(utilization));
    // Node's process metrics share the registry.
    assert.ok(metrics.get("process_cpu_user_seconds_total") !== undefined);
    assert.ok(metrics.get("nodejs_eventloop_lag_seconds") !== undefined);
  });

  test("any other path or method is 404", async () => {
    const port = t.server.metricsPort as number;
    for (const [path, method] of [
      ["/", "GET"],
      ["/metric", "GET"],
      ["/metrics/", "GET"],
      ["/metrics/x", "GET"],
      ["/favicon.ico", "GET"],
      ["/metrics", "POST"],
      ["/metrics", "DELETE"],
    ] as const) {
      const reply = await httpRequest(port, path, method);
      assert.equal(reply.status, 404, `${method} ${path}`);
    }
    assert.equal((await httpRequest(port, "/metrics?name[]=grpc_server_started_total")).status, 200);
  });

  test("the gRPC counters move by exactly the calls made", async () => {
    const { client } = t;
    const before = await t.scrape();

    await client.createModel("metered", { team: "ml" });
    const sizes = [1000, 2000, 500];
    const data = filled(3500, 7);
    const bodies = [data.subarray(0, 1000), data.subarray(1000, 3000), data.subarray(3000)];
    assert.deepEqual(bodies.map((b) => b.length), sizes);
    const version = await client.createVersion({ model_id: "metered", data_size: data.length }, bodies);
    assert.equal(version.version_number, 1);
    assert.ok((await client.retrieveData("metered", 1)).equals(data));
    await assert.rejects(client.retrieveVersionInfos({ model_id: "not-there" }), { code: grpc.status.NOT_FOUND });

    const after = await t.scrape();
    const unary = grpcLabels("unary", "CreateOrUpdateModel");
    assert.equal(delta(before, after, "grpc_server_started_total", unary), 1);
    assert.equal(delta(before, after, "grpc_server_handled_total", { ...unary, grpc_code: "OK" }), 1);
    assert.equal(delta(before, after, "grpc_server_msg_received_total", unary), 1);
    assert.equal(delta(before, after, "grpc_server_msg_sent_total", unary), 1);
    assert.equal(delta(before, after, "grpc_server_handling_seconds_count", unary), 1);
    assert.equal(delta(before, after, "grpc_server_handling_seconds_bucket", { ...unary, le: "+Inf" }), 1);
    assert.ok(delta(before, after, "grpc_server_handling_seconds_sum", unary) > 0);

    const upload = grpcLabels("client_stream", "CreateVersion");
    assert.equal(delta(before, after, "grpc_server_started_total", upload), 1);
    assert.equal(delta(before, after, "grpc_server_handled_total", { ...upload, grpc_code: "OK" }), 1);
    assert.equal(delta(before, after, "grpc_server_msg_received_total", upload), 1 + bodies.length, "the header and each body");
    assert.equal(delta(before, after, "grpc_server_msg_sent_total", upload), 1);
    assert.equal(delta(before, after, "grpc_server_handling_seconds_count", upload), 1);
    assert.equal(delta(before, after, "cogment_model_registry_version_data_received_bytes_total"), 3500);

    const download = grpcLabels("server_stream", "RetrieveVersionData");
    assert.equal(delta(before, after, "grpc_server_started_total", download), 1);
    assert.equal(delta(before, after, "grpc_server_handled_total", { ...download, grpc_code: "OK" }), 1);
    assert.equal(delta(before, after, "grpc_server_msg_received_total", download), 1);
    assert.equal(delta(before, after, "grpc_server_msg_sent_total", download), 4, "3500 bytes in chunks of 1024");
    assert.equal(delta(before, after, "cogment_model_registry_version_data_sent_bytes_total"), 3500);

    const infos = grpcLabels("unary", "RetrieveVersionInfos");
    assert.equal(before.get("grpc_server_handled_total", { ...infos, grpc_code: "NOT_FOUND" }), undefined);
    assert.equal(after.get("grpc_server_handled_total", { ...infos, grpc_code: "NOT_FOUND" }), 1);
    assert.equal(after.get("grpc_server_handled_total", { ...infos, grpc_code: "OK" }), before.get("grpc_server_handled_total", { ...infos, grpc_code: "OK" }));
    assert.equal(delta(before, after, "grpc_server_started_total", infos), 1);
    assert.equal(delta(before, after, "grpc_server_msg_sent_total", infos), 0, "an error status is no message");

    // Nothing else moved: a scrape is not a call.
    const again = await t.scrape();
    for (const name of ["grpc_server_started_total", "grpc_server_msg_received_total", "grpc_server_msg_sent_total"]) {
      for (const sample of again.samples.filter((s) => s.name === name)) {
        assert.equal(sample.value, after.get(name, sample.labels), `${name}${JSON.stringify(sample.labels)}`);
      }
    }
  });

  test("the registry gauges agree with Status", async () => {
    const { client } = t;
    await client.createModel("gauged");
    await client.publish("gauged", filled(10 * KiB, 1));
    await client.publish("gauged", filled(20 * KiB, 2));
    const status = (await client.status(["*"])).statuses;
    const metrics = await t.scrape();
    assert.ok(Number(status.cache_data_bytes) > 30 * KiB);
    assert.equal(metrics.value("cogment_model_registry_cache_data_bytes"), Number(status.cache_data_bytes));
    assert.equal(metrics.value("cogment_model_registry_cached_versions"), Number(status.cached_versions));
    assert.equal(metrics.value("cogment_model_registry_cache_used_bytes"), Number(status.cache_used_bytes));
    assert.equal(metrics.value("cogment_model_registry_cache_reserved_bytes"), 0);
    assert.equal(metrics.value("cogment_model_registry_cache_draining_bytes"), Number(status.cache_draining_bytes));
    assert.equal(metrics.value("cogment_model_registry_models"), Number(status.models));
    assert.equal(metrics.value("cogment_model_registry_uploads_in_flight"), 0);
    assert.equal(metrics.value("cogment_model_registry_version_update_subscribers"), 0);
  });

  test("an archived version is timed once in the archive write histogram", async () => {
    const { client } = t;
    await client.createModel("archived");
    const before = await t.scrape();
    await client.publish("archived", filled(5 * KiB, 3));
    const transient = await t.scrape();
    assert.equal(delta(before, transient, "cogment_model_registry_archive_write_seconds_count"), 0, "transient: no write");
    await client.publish("archived", filled(5 * KiB, 4), { archived: true });
    const after = await t.scrape();
    assert.equal(delta(before, after, "cogment_model_registry_archive_write_seconds_count"), 1);
    assert.equal(delta(before, after, "cogment_model_registry_archive_write_seconds_bucket", { le: "+Inf" }), 1);
    assert.ok(delta(before, after, "cogment_model_registry_archive_write_seconds_sum") > 0);
  });

  test("an open VersionUpdate is a subscriber; cancelling it is counted as CANCELLED when the stream ends", async () => {
    const { client } = t;
    await client.createModel("watched");
    const labels = grpcLabels("server_stream", "VersionUpdate");
    const before = await t.scrape();
    const stream = client.versionUpdate("watched");
    stream.on("error", () => {});
    await until(async () => (await t.scrape()).value("cogment_model_registry_version_update_subscribers") === 1, "a subscriber");
    const open = await t.scrape();
    assert.equal(delta(before, open, "grpc_server_started_total", labels), 1);
    assert.equal(delta(before, open, "grpc_server_handling_seconds_count", labels), 0, "still running");
    stream.cancel();
    await until(
      async () => (await t.scrape()).get("grpc_server_handled_total", { ...labels, grpc_code: "CANCELLED" }) === 1,
      "the CANCELLED count",
    );
    const ended = await t.scrape();
    assert.equal(ended.value("cogment_model_registry_version_update_subscribers"), 0);
    assert.equal(delta(before, ended, "grpc_server_handling_seconds_count", labels), 1);
  });

  test("a call the client resets before its request message arrived is counted as CANCELLED, not UNIMPLEMENTED", async () => {
    const labels = grpcLabels("unary", "RetrieveVersionInfos");
    const before = await t.scrape();
    const session = connectHttp2(`http://127.0.0.1:${t.server.port}`);
    try {
      const stream = session.request({
        ":method": "POST",
        ":path": `/${SERVICE}/RetrieveVersionInfos`,
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.on("error", () => {});
      await new Promise<void>((resolve) => stream.once("ready", () => resolve()));
      stream.close(http2Constants.NGHTTP2_CANCEL);
      await until(async () => delta(before, await t.scrape(), "grpc_server_handling_seconds_count", labels) === 1, "the call's end");
    } finally {
      session.destroy();
    }
    const after = await t.scrape();
    const cancelled = after.value("grpc_server_handled_total", { ...labels, grpc_code: "CANCELLED" });
    assert.equal(cancelled - (before.get("grpc_server_handled_total", { ...labels, grpc_code: "CANCELLED" }) ?? 0), 1);
    assert.ok(
      after.text.includes(
        `grpc_server_handled_total{grpc_type="unary",grpc_service="${SERVICE}",grpc_method="RetrieveVersionInfos",grpc_code="CANCELLED"} ${cancelled}\n`,
      ),
      after.text,
    );
    assert.equal(after.get("grpc_server_handled_total", { ...labels, grpc_code: "UNIMPLEMENTED" }), undefined);
    assert.equal(delta(before, after, "grpc_server_started_total", labels), 1);
    assert.equal(delta(before, after, "grpc_server_msg_received_total", labels), 0);
  });

  test("a request that does not decode is received, counted as INVALID_ARGUMENT, and never reaches the handler", async () => {
    const labels = grpcLabels("unary", "RetrieveModels");
    const before = await t.scrape();
    const raw = new grpc.Client(`127.0.0.1:${t.server.port}`, grpc.credentials.createInsecure());
    try {
      const identity = (bytes: Buffer): Buffer => bytes;
      // Field 1 (model_ids, length-delimited) claiming 100 bytes, followed by 2.
      const garbage = Buffer.from([0x0a, 0x64, 0x61, 0x62]);
      const error = await new Promise<grpc.ServiceError | null>((resolve) =>
        raw.makeUnaryRequest(`/${SERVICE}/RetrieveModels`, identity, identity, garbage, (e) => resolve(e)),
      );
      assert.equal(error?.code, grpc.status.INVALID_ARGUMENT);
    } finally {
      raw.close();
    }
    const after = await t.scrape();
    assert.equal(delta(before, after, "grpc_server_started_total", labels), 1);
    assert.equal(delta(before, after, "grpc_server_msg_received_total", labels), 1);
    assert.equal(delta(before, after, "grpc_server_msg_sent_total", labels), 0, "no reply message: the handler never ran");
    assert.equal(delta(before, after, "grpc_server_handled_total", { ...labels, grpc_code: "INVALID_ARGUMENT" }), 1);
    assert.equal(delta(before, after, "grpc_server_handling_seconds_count", labels), 1);
  });

  test("a failed upload counts its status and the bytes that did arrive", async () => {
    const { client } = t;
    await client.createModel("too-many");
    const labels = grpcLabels("client_stream", "CreateVersion");
    const before = await t.scrape();
    await assert.rejects(client.createVersion({ model_id: "too-many", data_size: 10 }, [Buffer.alloc(6), Buffer.alloc(6)]), {
      code: grpc.status.INVALID_ARGUMENT,
    });
    const after = await t.scrape();
    assert.equal(delta(before, after, "grpc_server_handled_total", { ...labels, grpc_code: "INVALID_ARGUMENT" }), 1);
    assert.equal(delta(before, after, "cogment_model_registry_version_data_received_bytes_total"), 12);
    assert.equal(after.value("cogment_model_registry_cache_reserved_bytes"), 0);
  });
});

describe("hash lanes", () => {
  test("none until the first version streamed to disk starts one; Status and the metrics say the same", async (t) => {
    // A 1 MiB archived version is larger than a quarter of the 400 KiB budget: streamed to disk, hashed on a lane.
    const s = await startMetricsServer({ cacheMaxBytes: 400 * KiB });
    t.after(() => s.close());
    const figures = async (): Promise<{ status: [string, string]; metrics: [number, number] }> => {
      const { statuses } = await s.client.status(["hash_lane_threads", "hash_lane_streams"]);
      const metrics = await s.scrape();
      return {
        status: [statuses.hash_lane_threads ?? "", statuses.hash_lane_streams ?? ""],
        metrics: [metrics.value("cogment_model_registry_hash_lane_threads"), metrics.value("cogment_model_registry_hash_lane_streams")],
      };
    };
    assert.deepEqual(await figures(), { status: ["0", "0"], metrics: [0, 0] });
    await s.client.createModel("lanes");
    const data = filled(1024 * KiB, 3);
    await s.client.publish("lanes", data, { archived: true });
    assert.deepEqual(await figures(), { status: ["1", "0"], metrics: [1, 0] });
    assert.ok((await s.client.retrieveData("lanes", 1)).equals(data));
    assert.deepEqual(await figures(), { status: ["1", "0"], metrics: [1, 0] }, "the read's hash is done and released");
  });
});

describe("evictions", () => {
  test("are counted by reason, as Status reports them", async (t) => {
    const s = await startMetricsServer({ cacheMaxBytes: 400 * KiB, cachePruneCount: 1, sentChunkSize: 64 * KiB });
    t.after(() => s.close());
    await s.client.createModel("evict");
    for (let i = 0; i < 10; i++) {
      await s.client.publish("evict", filled(100 * KiB, i));
    }
    const status = (await s.client.status(["cache_evictions_size", "cache_evictions_expired"])).statuses;
    const metrics = await s.scrape();
    assert.ok(Number(status.cache_evictions_size) >= 7, status.cache_evictions_size);
    assert.equal(metrics.value("cogment_model_registry_cache_evictions_total", { reason: "size" }), Number(status.cache_evictions_size));
    assert.equal(metrics.value("cogment_model_registry_cache_evictions_total", { reason: "expired" }), 0);
    // A second scrape does not count them twice.
    const again = await s.scrape();
    assert.equal(again.value("cogment_model_registry_cache_evictions_total", { reason: "size" }), Number(status.cache_evictions_size));
  });
});

describe("the metrics port", () => {
  test("is off by default: no second port is opened", async () => {
    const before = await tcpServers();
    const s = await startMetricsServer({}, {});
    try {
      assert.equal(s.server.metricsPort, undefined);
      assert.equal((await tcpServers()) - before, 1, "only the gRPC listener");
      await s.client.version();
    } finally {
      await s.close();
    }
  });

  test("metricsPort 0 is off too", async () => {
    const before = await tcpServers();
    const s = await startMetricsServer({ metricsPort: 0 }, {});
    try {
      assert.equal(s.server.metricsPort, undefined);
      assert.equal((await tcpServers()) - before, 1, "only the gRPC listener");
    } finally {
      await s.close();
    }
  });

  test("a metricsPort from the configuration serves /metrics there, and is released at stop", async () => {
    const port = await freePort();
    const before = await tcpServers();
    const s = await startMetricsServer({ metricsPort: port }, {});
    try {
      assert.equal(s.server.metricsPort, port);
      assert.equal((await tcpServers()) - before, 2, "the gRPC and the metrics listeners");
      await s.client.version();
      const metrics = await s.scrape();
      assert.equal(metrics.value("grpc_server_handled_total", { ...grpcLabels("unary", "Version"), grpc_code: "OK" }), 1);
    } finally {
      await s.close();
    }
    assert.equal(await tcpServers(), before);
    await assert.rejects(httpRequest(port, "/metrics"), { code: "ECONNREFUSED" });
  });

  test("a metrics port in use fails the start and releases everything", async (t) => {
    const blocker = await listen(createNetServer());
    t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
    const port = (blocker.address() as AddressInfo).port;
    const archiveDir = await makeArchiveDir(t);
    const before = await tcpServers();
    await assert.rejects(
      startServer({ ...DEFAULT_TEST_CONFIG, archiveDir }, createLogger("silent"), {
        host: "127.0.0.1",
        metricsListen: { port, host: "127.0.0.1" },
      }),
      { code: "EADDRINUSE" },
    );
    assert.equal(await tcpServers(), before);
  });
});

function listen(server: NetServer): Promise<NetServer> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

async function freePort(): Promise<number> {
  const server = await listen(createNetServer());
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
