/**
 * The rapid-reset abuse of issue #13: a client on 127.0.0.2 opens streams and resets each at
 * once, reconnecting after every GOAWAY or close, for 10 s, while 8 well-behaved clients on
 * 127.0.0.1 call RetrieveVersionInfos in a loop. Reports their p99 before, during and after the
 * abuse, the server's RSS at each point (and 5 s after the good clients stopped too: what an idle
 * server gives back), and what the abusive client achieved: once with the per-address limits off
 * (0) and once with the defaults.
 *
 *   node dist/bench/abuse/rapid-reset.js            # JSON lines, one per case
 *   node dist/bench/abuse/rapid-reset.js abuser PORT MAX_MS   # (internal) the abusive client
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { constants, connect } from "node:http2";
import { createConnection } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { trackChild } from "../support/cleanup.js";
import { machineInfo } from "../support/machine-info.js";
import { summarize } from "../support/percentiles.js";
import { readResidentBreakdown } from "../support/resident-breakdown.js";
import { startBenchServer } from "../support/server-process.js";

const SERVICE = "cogmentAPI.ModelRegistrySP";
const GOOD_CLIENTS = 8;
const PHASE_MS = 5_000;
const ABUSE_MS = 10_000;
const MAX_STREAMS = 200_000;
const MIB = 1024 * 1024;

interface AbuseOutcome {
  readonly streamsReset: number;
  readonly connections: number;
  readonly refused: number;
  readonly goawayCodes: Record<string, number>;
}

/** The abusive client, in a process of its own so that it does not share the good clients' event loop. */
async function abuse(port: number, maxMs: number): Promise<AbuseOutcome> {
  const deadline = Date.now() + maxMs;
  let streamsReset = 0;
  let connections = 0;
  let refused = 0;
  const goawayCodes: Record<string, number> = {};
  while (Date.now() < deadline && streamsReset < MAX_STREAMS) {
    connections++;
    const session = connect(`http://127.0.0.1:${port}`, {
      createConnection: () => createConnection({ host: "127.0.0.1", port, localAddress: "127.0.0.2" }),
    });
    session.on("error", () => {});
    let gotGoaway = false;
    session.on("goaway", (code: number) => {
      gotGoaway = true;
      goawayCodes[code] = (goawayCodes[code] ?? 0) + 1;
    });
    const closed = new Promise<void>((resolve) => session.once("close", () => resolve()));
    const accepted = await new Promise<boolean>((resolve) => {
      session.once("remoteSettings", () => resolve(true));
      void closed.then(() => resolve(false));
    });
    if (!accepted) {
      refused++;
      await sleep(100); // a banned client retries; no need to spin
      continue;
    }
    while (!session.closed && !session.destroyed && !gotGoaway && Date.now() < deadline) {
      for (let i = 0; i < 50; i++) {
        const stream = session.request({ ":method": "POST", ":path": `/${SERVICE}/RetrieveVersionInfos`, "content-type": "application/grpc", te: "trailers" });
        stream.on("error", () => {});
        stream.close(constants.NGHTTP2_CANCEL);
        streamsReset++;
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    session.destroy();
    await closed;
  }
  return { streamsReset, connections, refused, goawayCodes };
}

function retrieveVersionInfos(client: grpc.Client): Promise<void> {
  // RetrieveVersionInfosRequest { model_id: "m" }, hand-encoded.
  const request = Buffer.from([0x0a, 0x01, 0x6d]);
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(`/${SERVICE}/RetrieveVersionInfos`, (b: Buffer) => b, (b: Buffer) => b, request, (error) => (error ? reject(error) : resolve())),
  );
}

function createModel(client: grpc.Client): Promise<void> {
  // CreateOrUpdateModelRequest { model_info: { model_id: "m" } }
  const request = Buffer.from([0x0a, 0x03, 0x0a, 0x01, 0x6d]);
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(`/${SERVICE}/CreateOrUpdateModel`, (b: Buffer) => b, (b: Buffer) => b, request, (error) => (error ? reject(error) : resolve())),
  );
}

async function runCase(label: string, env: Record<string, string>): Promise<Record<string, unknown>> {
  const server = await startBenchServer({ env, cacheMaxBytes: 256 * MIB });
  const clients = Array.from({ length: GOOD_CLIENTS }, () => new grpc.Client(server.address, grpc.credentials.createInsecure()));
  try {
    await createModel(clients[0] as grpc.Client);
    let phase = "warmup";
    const latencies: Record<string, number[]> = { before: [], during: [], after: [] };
    let errors = 0;
    let running = true;
    const loops = clients.map(async (client) => {
      while (running) {
        const started = performance.now();
        try {
          await retrieveVersionInfos(client);
          latencies[phase]?.push(performance.now() - started);
        } catch {
          errors++;
        }
      }
    });
    await sleep(1000);
    phase = "before";
    await sleep(PHASE_MS);
    const rssBefore = server.memory().rssBytes;
    const breakdownBefore = readResidentBreakdown(server.pid);
    phase = "during";
    const abuser = spawn(process.execPath, [fileURLToPath(import.meta.url), "abuser", String(server.port), String(ABUSE_MS)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    trackChild(abuser);
    let output = "";
    abuser.stdout.on("data", (data: Buffer) => (output += data.toString()));
    let rssDuringPeak = 0;
    const exited = new Promise<void>((resolve) => abuser.once("exit", () => resolve()));
    while (abuser.exitCode === null) {
      rssDuringPeak = Math.max(rssDuringPeak, server.memory().rssBytes);
      await Promise.race([exited, sleep(250)]);
    }
    const outcome = JSON.parse(output) as AbuseOutcome;
    const rssRightAfter = server.memory().rssBytes;
    phase = "after";
    await sleep(PHASE_MS);
    const rssAfter = server.memory().rssBytes;
    const breakdownAfter = readResidentBreakdown(server.pid);
    running = false;
    await Promise.all(loops);
    // No calls at all: what the server gives back once idle (its memory guard checks every 2 s).
    await sleep(PHASE_MS);
    const rssIdle = server.memory().rssBytes;
    const breakdownIdle = readResidentBreakdown(server.pid);
    const p = (name: string): number | null => summarize(latencies[name] ?? []).p99;
    const p50 = (name: string): number | null => summarize(latencies[name] ?? []).p50;
    return {
      case: label,
      goodClientP50Ms: { before: p50("before"), during: p50("during"), after: p50("after") },
      goodClientP99Ms: { before: p("before"), during: p("during"), after: p("after") },
      goodCalls: { before: latencies.before?.length, during: latencies.during?.length, after: latencies.after?.length, errors },
      serverRssMiB: {
        before: Math.round(rssBefore / MIB),
        duringPeak: Math.round(rssDuringPeak / MIB),
        rightAfter: Math.round(rssRightAfter / MIB),
        fiveSecondsAfter: Math.round(rssAfter / MIB),
        idleFiveSeconds: Math.round(rssIdle / MIB),
      },
      // Where the resident set is: V8's heap pages, malloc's (see resident-breakdown.ts).
      serverResidentMiB: {
        before: { v8Pages: Math.round(breakdownBefore.v8PagesKiB / 1024), malloc: Math.round(breakdownBefore.mallocKiB / 1024) },
        fiveSecondsAfter: { v8Pages: Math.round(breakdownAfter.v8PagesKiB / 1024), malloc: Math.round(breakdownAfter.mallocKiB / 1024) },
        idleFiveSeconds: { v8Pages: Math.round(breakdownIdle.v8PagesKiB / 1024), malloc: Math.round(breakdownIdle.mallocKiB / 1024) },
      },
      abuser: outcome,
    };
  } finally {
    for (const client of clients) client.close();
    await server.stop();
  }
}

if (process.argv[2] === "abuser") {
  const outcome = await abuse(Number(process.argv[3]), Number(process.argv[4]));
  process.stdout.write(JSON.stringify(outcome));
} else {
  process.stdout.write(JSON.stringify({ machine: machineInfo() }) + "\n");
  const off = { COGMENT_MODEL_REGISTRY_PEER_NEW_STREAMS_PER_SECOND: "0", COGMENT_MODEL_REGISTRY_PEER_CANCELLED_STREAMS_PER_SECOND: "0" };
  process.stdout.write(JSON.stringify(await runCase("limits off", off)) + "\n");
  process.stdout.write(JSON.stringify(await runCase("default limits", {})) + "\n");
}
