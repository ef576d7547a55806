/**
 * The per-client-address stream limits, end to end. Every test client is on the loopback, so the
 * abusive client binds another loopback address (Linux routes all of 127/8 to lo): 127.0.0.2 and
 * 127.0.0.3 are "other peers" of the well-behaved client on 127.0.0.1.
 */
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { type ClientHttp2Session, connect, constants } from "node:http2";
import { rm } from "node:fs/promises";
import { createConnection } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, test } from "node:test";
import { createLogger } from "../../src/logger.js";
import { type RunningServer, type ServerConfig, startServer } from "../../src/server.js";
import { CREATE_VERSION_PATH } from "../../src/rpc/create-version-stream.js";
import { RegistryClient } from "../support/registry-client.js";
import { jsonLogSink } from "../support/log-capture.js";
import { DEFAULT_TEST_CONFIG, makeArchiveDir } from "../support/test-server.js";

const SERVICE = "cogmentAPI.ModelRegistrySP";
const ENHANCE_YOUR_CALM = constants.NGHTTP2_ENHANCE_YOUR_CALM;

interface LimitedServer {
  readonly server: RunningServer;
  readonly address: string;
  readonly logLines: Record<string, unknown>[];
  metrics(): Promise<string>;
  close(): Promise<void>;
}

async function startLimitedServer(limits: Partial<ServerConfig>): Promise<LimitedServer> {
  const archiveDir = await makeArchiveDir();
  const logLines: Record<string, unknown>[] = [];
  const sink = jsonLogSink(logLines);
  const server = await startServer({ ...DEFAULT_TEST_CONFIG, ...limits, archiveDir }, createLogger("warn", sink), {
    host: "127.0.0.1",
    metricsListen: { port: 0, host: "127.0.0.1" },
  });
  return {
    server,
    address: `127.0.0.1:${server.port}`,
    logLines,
    metrics: () =>
      new Promise((resolve, reject) => {
        const req = httpRequest({ host: "127.0.0.1", port: server.metricsPort, path: "/metrics", agent: false }, (res) => {
          let body = "";
          res.on("data", (chunk: Buffer) => (body += chunk.toString()));
          res.on("end", () => resolve(body));
        });
        req.on("error", reject);
        req.end();
      }),
    close: async () => {
      await server.stop();
      await rm(archiveDir, { recursive: true, force: true });
    },
  };
}

/** How one connection attempt from `localAddress` ended. */
interface Connection {
  readonly session: ClientHttp2Session;
  /** Resolves true once the server's SETTINGS arrived (accepted), false if it closed the connection first (refused). */
  readonly accepted: Promise<boolean>;
  /** GOAWAY codes received. */
  readonly goaways: number[];
  readonly closed: Promise<void>;
}

function connectFrom(port: number, localAddress: string): Connection {
  const session = connect(`http://127.0.0.1:${port}`, { createConnection: () => createConnection({ host: "127.0.0.1", port, localAddress }) });
  const goaways: number[] = [];
  session.on("error", () => {});
  session.on("goaway", (code: number) => goaways.push(code));
  const closed = new Promise<void>((resolve) => session.once("close", () => resolve()));
  const accepted = new Promise<boolean>((resolve) => {
    session.once("remoteSettings", () => resolve(true));
    void closed.then(() => resolve(false));
  });
  return { session, accepted, goaways, closed };
}

function openCall(session: ClientHttp2Session, method: string): ReturnType<ClientHttp2Session["request"]> {
  const stream = session.request({ ":method": "POST", ":path": `/${SERVICE}/${method}`, "content-type": "application/grpc", te: "trailers" });
  stream.on("error", () => {});
  return stream;
}

/** One unary RetrieveModels call (an empty request message) over a raw session: its grpc-status. */
function rawRetrieveModels(session: ClientHttp2Session): Promise<string | undefined> {
  const stream = openCall(session, "RetrieveModels");
  return new Promise((resolve) => {
    let status: string | undefined;
    stream.on("trailers", (trailers) => (status = String(trailers["grpc-status"])));
    stream.on("close", () => resolve(status));
    stream.resume();
    stream.end(Buffer.alloc(5)); // uncompressed, length 0
  });
}

interface RapidResetOutcome {
  readonly streamsReset: number;
  readonly connections: number;
  readonly goaways: number[];
  readonly refused: boolean;
}

/**
 * The rapid-reset client: opens `method` streams (RetrieveVersionInfos by default) and resets each at
 * once, reconnecting after every GOAWAY or close, until a connection is refused or `maxStreams` /
 * `maxMs` are reached.
 */
async function rapidReset(port: number, localAddress: string, maxStreams: number, maxMs: number, method = "RetrieveVersionInfos"): Promise<RapidResetOutcome> {
  const deadline = Date.now() + maxMs;
  let streamsReset = 0;
  let connections = 0;
  const goaways: number[] = [];
  while (streamsReset < maxStreams && Date.now() < deadline) {
    const connection = connectFrom(port, localAddress);
    connections++;
    if (!(await connection.accepted)) {
      return { streamsReset, connections, goaways, refused: true };
    }
    while (!connection.session.closed && !connection.session.destroyed && connection.goaways.length === 0 && streamsReset < maxStreams) {
      for (let i = 0; i < 20; i++) {
        openCall(connection.session, method).close(constants.NGHTTP2_CANCEL);
        streamsReset++;
      }
      await sleep(1); // let the frames go out and the server answer
      if (Date.now() >= deadline) break;
    }
    goaways.push(...connection.goaways);
    connection.session.destroy();
    await connection.closed;
  }
  return { streamsReset, connections, goaways, refused: false };
}

function metricLine(text: string, name: string): string | undefined {
  return text.split("\n").find((line) => line.startsWith(name + " ") || line.startsWith(name + "{"));
}

describe("per-address stream limits", () => {
  test("a rapid-reset client is cut off with ENHANCE_YOUR_CALM, refused during its ban and accepted after; another address keeps being served", async (t) => {
    const s = await startLimitedServer({ peerCancelledStreamsPerSecond: 50, peerNewStreamsPerSecond: 0, peerBanMs: 3000 });
    t.after(() => s.close());
    const good = new RegistryClient(s.address);
    t.after(() => good.close());
    await good.createModel("steady");

    const abuse = rapidReset(s.server.port, "127.0.0.2", 20_000, 20_000);
    // The well-behaved client calls all along.
    let goodCalls = 0;
    while (goodCalls < 5 || !(await Promise.race([abuse.then(() => true), sleep(0).then(() => false)]))) {
      assert.deepEqual((await good.retrieveModels()).model_infos.map((m) => m.model_id), ["steady"]);
      goodCalls++;
    }
    const outcome = await abuse;
    assert.equal(outcome.refused, true, `cut off and refused: ${JSON.stringify(outcome)}`);
    assert.ok(outcome.goaways.includes(ENHANCE_YOUR_CALM), `GOAWAY ENHANCE_YOUR_CALM received: ${JSON.stringify(outcome)}`);
    assert.ok(outcome.streamsReset < 20_000, `stopped before its budget: ${outcome.streamsReset}`);

    // Still banned: refused again at once; the other address is served.
    const again = connectFrom(s.server.port, "127.0.0.2");
    assert.equal(await again.accepted, false);
    assert.equal(again.goaways.length, 0, "refused before any HTTP/2 frame");
    assert.equal((await good.retrieveModels()).model_infos.length, 1);

    const bans = s.logLines.filter((l) => l.msg === "client address over its stream limit: connection closed, new connections from it refused for the ban period");
    assert.equal(bans.length, 1, JSON.stringify(s.logLines));
    assert.equal(bans[0]?.level, 40);
    assert.equal(bans[0]?.peer, "127.0.0.2");
    assert.equal(bans[0]?.limit, "cancelled_streams");
    assert.equal(bans[0]?.perSecond, 50);
    assert.equal(bans[0]?.banMs, 3000);

    const metrics = await s.metrics();
    const closedLine = metricLine(metrics, 'cogment_model_registry_peer_sessions_closed_total{limit="cancelled_streams"}');
    assert.match(closedLine ?? "", /^cogment_model_registry_peer_sessions_closed_total\{limit="cancelled_streams"\} [1-9]\d*$/);
    assert.equal(metricLine(metrics, 'cogment_model_registry_peer_sessions_closed_total{limit="new_streams"}'), 'cogment_model_registry_peer_sessions_closed_total{limit="new_streams"} 0');
    const refused = Number(metricLine(metrics, "cogment_model_registry_peer_connections_refused_total")?.split(" ")[1]);
    assert.ok(refused >= 2, `refused connections: ${refused}`);

    // After the ban the address is served again (bounded wait: the ban is 3 s).
    const until = Date.now() + 30_000;
    let status: string | undefined;
    while (status === undefined && Date.now() < until) {
      const connection = connectFrom(s.server.port, "127.0.0.2");
      if (await connection.accepted) {
        status = await rawRetrieveModels(connection.session);
      } else {
        await sleep(200);
      }
      connection.session.destroy();
      await connection.closed;
    }
    assert.equal(status, "0", "a call from the formerly banned address succeeds");
  });

  test("CreateVersion streams, served below grpc-js, count as any other: a rapid-reset client of CreateVersion is cut off and refused", async (t) => {
    const s = await startLimitedServer({ peerCancelledStreamsPerSecond: 50, peerNewStreamsPerSecond: 0, peerBanMs: 3000 });
    t.after(() => s.close());
    const outcome = await rapidReset(s.server.port, "127.0.0.2", 20_000, 20_000, "CreateVersion");
    assert.equal(outcome.refused, true, `cut off and refused: ${JSON.stringify(outcome)}`);
    assert.ok(outcome.goaways.includes(ENHANCE_YOUR_CALM), `GOAWAY ENHANCE_YOUR_CALM received: ${JSON.stringify(outcome)}`);
    assert.ok(s.server.fastPathCalls(CREATE_VERSION_PATH) > 0, "the streams went to the fast path");
  });

  test("an address opening streams faster than its new-stream limit is cut off; a call in flight elsewhere is not", async (t) => {
    const s = await startLimitedServer({ peerNewStreamsPerSecond: 100, peerCancelledStreamsPerSecond: 0, peerBanMs: 60_000 });
    t.after(() => s.close());
    const good = new RegistryClient(s.address);
    t.after(() => good.close());
    await good.createModel("steady");
    const watch = good.versionUpdate("steady");
    watch.on("error", () => {});
    t.after(() => watch.cancel());

    const flood = connectFrom(s.server.port, "127.0.0.3");
    assert.equal(await flood.accepted, true);
    const statuses = await Promise.all(Array.from({ length: 400 }, () => rawRetrieveModels(flood.session)));
    await flood.closed;
    assert.deepEqual(flood.goaways, [ENHANCE_YOUR_CALM]);
    // The 101st stream within the second closes the connection, with the calls still on it.
    assert.ok(statuses.every((code) => code === undefined || code === "0"), JSON.stringify(statuses));
    assert.ok(statuses.filter((code) => code === undefined).length >= 300, "the streams past the limit were never served");

    assert.equal(await connectFrom(s.server.port, "127.0.0.3").accepted, false, "banned");
    assert.equal((await good.retrieveModels()).model_infos.length, 1);
    await good.publish("steady", Buffer.from("v1"));
    const update = await new Promise((resolve) => watch.once("data", resolve));
    assert.ok(update !== undefined, "the open VersionUpdate stream of 127.0.0.1 is untouched");

    const bans = s.logLines.filter((l) => l.limit === "new_streams");
    assert.equal(bans.length, 1);
    assert.equal(bans[0]?.peer, "127.0.0.3");
    assert.equal(bans[0]?.perSecond, 100);
    assert.equal(
      metricLine(await s.metrics(), 'cogment_model_registry_peer_sessions_closed_total{limit="new_streams"}'),
      'cogment_model_registry_peer_sessions_closed_total{limit="new_streams"} 1',
    );
  });
});
