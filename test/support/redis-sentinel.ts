/*
 * A real Sentinel deployment on loopback (#17): a primary and one replica (`--replicaof`), both with
 * AOF (`appendfsync always`), and 3 Sentinels (`redis-server <conf> --sentinel`, each with its own
 * config file in a temp directory, since Sentinel rewrites it) monitoring them with quorum 2. The
 * Sentinels are told of the replica and of each other in their config (`known-replica`,
 * `known-sentinel`, fixed `myid`s), so the deployment can fail over as soon as it is up instead of
 * after the 10 s of discovery. A failover takes a few seconds: `down-after-milliseconds` 1000.
 * Every process runs in its own process group and is killed by it when the test ends (passed or
 * failed) and at process exit.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { createConnection } from "node:net";
import { type DelayProxy, startDelayProxy } from "./delay-proxy.js";
import { makeTestTlsFiles } from "./test-tls.js";
import { REDIS_SERVER_BINARY, type RedisTestServer, freeLoopbackPort, startRedisServer } from "./redis-server.js";
import { liveProcessGroups, signalGroup } from "./process-groups.js";
import { onCleanup } from "./cleanup.js";

export const MASTER_NAME = "registry-primary";
const DOWN_AFTER_MS = 1000;
const FAILOVER_TIMEOUT_MS = 6000;

const { live, killAll } = liveProcessGroups();
const killGroup = (child: ChildProcess): void => signalGroup(child, "SIGKILL");

/** Kills every test Sentinel still running (the data nodes are redis-server.ts's: killAllRedisServers). */
export function killAllSentinels(): void {
  killAll();
}

export interface SentinelDeploymentOptions {
  /** `requirepass` (and `masterauth`) of the data nodes; the Sentinels get it as `auth-pass`. */
  readonly dataPassword?: string;
  /** `requirepass` of the Sentinels (and `sentinel-pass`, for their talk to each other). */
  readonly sentinelPassword?: string;
  /**
   * TLS: every node and Sentinel also gets a `tls-port` with a certificate for 127.0.0.1 from a
   * fresh test CA (`caFile`), and they talk to each other over TLS (`tls-replication yes`), so the
   * Sentinels name the nodes' TLS ports and `url` lists the Sentinels' TLS ports. The plain ports
   * stay, for the helper's own checks.
   */
  readonly tls?: boolean;
  /**
   * The Sentinels (and the replica) know the primary by the port of a loopback proxy to it, as
   * Sentinels in containers name a primary by an address the instances outside cannot use: once they
   * are all connected through it, the proxy refuses new connections (theirs go on), so the instances
   * reach that primary only through `natMap`. Not with `tls`. After a failover, the Sentinels name the
   * promoted replica at its own port.
   */
  readonly primaryBehindNat?: boolean;
}

export interface SentinelDeployment {
  /** The two data nodes; which one is the primary changes with a failover. */
  readonly nodes: readonly [RedisTestServer, RedisTestServer];
  /** The ports the instances are given (the TLS ones with TLS). */
  readonly sentinelPorts: readonly number[];
  /** `redis+sentinel://127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>/<MASTER_NAME>` (without the passwords; `rediss+sentinel` with TLS). */
  readonly url: string;
  /** With `tls`: the test CA's certificate (for NODE_EXTRA_CA_CERTS). */
  readonly caFile: string | undefined;
  /** With `primaryBehindNat`: COGMENT_MODEL_REGISTRY_REDIS_NAT_MAP's value, the address the Sentinels name to the primary's own ("" without). */
  readonly natMap: string;
  /** With `primaryBehindNat`: the port the Sentinels name for the first primary (the proxy's, which refuses connections); else its own. */
  readonly announcedPrimaryPort: number;
  /** The data node every Sentinel names as the primary now (undefined while they disagree). */
  primary(): Promise<RedisTestServer | undefined>;
  /** Waits until every Sentinel names `node` as the primary (after a failover); rejects after `timeoutMs`. */
  waitForPrimary(node: RedisTestServer, timeoutMs?: number): Promise<void>;
  /** SENTINEL FAILOVER through the first Sentinel: the replica is promoted, the primary stays up and is turned into a replica. */
  failover(): Promise<void>;
  /** A plain client of a data node, for a test to look at keys (closed after the test). */
  inspect(node: RedisTestServer): Redis;
}

async function startSentinel(t: TestContext, port: number, password: string | undefined, config: string): Promise<void> {
  const directory = await mkdtemp(path.join(tmpdir(), "mr-sentinel-"));
  const configFile = path.join(directory, "sentinel.conf");
  await writeFile(configFile, `port ${port}\nbind 127.0.0.1\ndir ${directory}\ndaemonize no\nloglevel warning\n${config}`);
  const child = spawn(REDIS_SERVER_BINARY, [configFile, "--sentinel"], { stdio: ["ignore", "pipe", "pipe"], detached: true });
  live.add(child);
  child.once("exit", () => live.delete(child));
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  onCleanup(t, async () => {
    killGroup(child);
    await exited;
    // Only now: a Sentinel rewrites its configuration file there (after a failover, say).
    await rm(directory, { recursive: true, force: true });
  });
  let output = "";
  const collect = (data: Buffer): void => {
    output = (output + data.toString()).slice(-4000);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  let spawnError: Error | undefined;
  child.once("error", (error) => (spawnError = error));
  await waitForPong(port, 30_000, password, () => {
    if (spawnError !== undefined) {
      return `cannot run ${REDIS_SERVER_BINARY} --sentinel: ${spawnError.message}`;
    }
    return child.exitCode !== null || child.signalCode !== null ? `Sentinel exited with ${child.exitCode ?? child.signalCode}: ${output}` : undefined;
  });
}

/** Resolves once the Sentinel on `port` answers PING (after AUTH with `password`); rejects after `timeoutMs` or when `failed` says so. */
async function waitForPong(port: number, timeoutMs: number, password: string | undefined, failed: () => string | undefined): Promise<void> {
  const request = password === undefined ? "PING\r\n" : `AUTH ${password}\r\nPING\r\n`;
  const expected = password === undefined ? "+PONG\r\n" : "+OK\r\n+PONG\r\n";
  for (const deadline = Date.now() + timeoutMs; ; await sleep(20)) {
    const failure = failed();
    if (failure !== undefined) {
      throw new Error(failure);
    }
    const reply = await new Promise<string>((resolve) => {
      const socket = createConnection({ host: "127.0.0.1", port });
      let received = "";
      const done = (): void => {
        socket.destroy();
        resolve(received);
      };
      socket.setTimeout(500, done);
      socket.once("error", done);
      socket.once("connect", () => socket.write(request));
      socket.on("data", (data: Buffer) => {
        received += data.toString();
        if (received.length >= expected.length || received.startsWith("-")) {
          done();
        }
      });
    });
    if (reply === expected) {
      return;
    }
    if (Date.now() > deadline) {
      throw new Error(`the Sentinel on port ${port} did not answer PING within ${timeoutMs} ms`);
    }
  }
}

/** The name the helper's own clients give themselves (CLIENT SETNAME), so a test can tell them from the instances'. */
export const INSPECT_CLIENT_NAME = "test-inspect";

function client(t: TestContext, port: number, password: string | undefined): Redis {
  const redis = new Redis({ host: "127.0.0.1", port, password, maxRetriesPerRequest: 1, connectionName: INSPECT_CLIENT_NAME });
  redis.on("error", () => undefined);
  t.after(() => redis.disconnect());
  return redis;
}

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !(await check().catch(() => false)); await sleep(50)) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
  }
}

/** Starts the primary, its replica and 3 Sentinels; everything is stopped when the test ends. */
export async function startSentinelDeployment(t: TestContext, options: SentinelDeploymentOptions = {}): Promise<SentinelDeployment> {
  const { dataPassword, sentinelPassword } = options;
  const tls = options.tls === true ? await makeTestTlsFiles("IP:127.0.0.1") : undefined;
  if (tls !== undefined) {
    onCleanup(t, () => tls.remove());
  }
  const tlsArgs = (tlsPort: number): string[] => (tls?.directives(tlsPort) ?? []).flatMap(([name, value]) => [`--${name}`, value as string]);
  // The port the Sentinels and the instances know each data node by: its TLS port with TLS.
  const [primaryTlsPort, replicaTlsPort] = tls === undefined ? [0, 0] : [await freeLoopbackPort(), await freeLoopbackPort()];
  if (tls !== undefined && options.primaryBehindNat === true) {
    throw new Error("primaryBehindNat: not with tls");
  }
  const primary = await startRedisServer(t, { appendOnly: true, extraArgs: tlsArgs(primaryTlsPort) });
  let nat: DelayProxy | undefined;
  if (options.primaryBehindNat === true) {
    nat = await startDelayProxy(primary.port, 0);
    const proxy = nat;
    onCleanup(t, () => proxy.close());
  }
  const knownPort = (node: RedisTestServer): number =>
    tls === undefined ? (node === primary && nat !== undefined ? nat.port : node.port) : node === primary ? primaryTlsPort : replicaTlsPort;
  const replica = await startRedisServer(t, {
    appendOnly: true,
    extraArgs: [...tlsArgs(replicaTlsPort), "--replicaof", "127.0.0.1", String(knownPort(primary))],
  });
  const nodes = [primary, replica] as const;
  const replicaClient = client(t, replica.port, undefined);
  await until("the replica's link to the primary", 30_000, async () => (await replicaClient.info("replication")).includes("master_link_status:up"));
  if (dataPassword !== undefined) {
    // Set once they run (redis-server.ts's readiness PING has no password); the link is up already.
    for (const node of [replica, primary]) {
      const setup = client(t, node.port, undefined);
      await setup.config("SET", "masterauth", dataPassword);
      await setup.config("SET", "requirepass", dataPassword);
      setup.disconnect();
    }
  }

  const sentinelPorts = [await freeLoopbackPort(), await freeLoopbackPort(), await freeLoopbackPort()];
  const sentinelTlsPorts = tls === undefined ? sentinelPorts : [await freeLoopbackPort(), await freeLoopbackPort(), await freeLoopbackPort()];
  const ids = sentinelPorts.map((_, index) => String(index + 1).repeat(40));
  await Promise.all(
    sentinelPorts.map((port, index) =>
      startSentinel(
        t,
        port,
        sentinelPassword,
        [
          ...(tls?.directives(sentinelTlsPorts[index] as number) ?? []).map((words) => words.join(" ")),
          `sentinel myid ${ids[index]}`,
          `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${knownPort(primary)} 2`,
          `sentinel down-after-milliseconds ${MASTER_NAME} ${DOWN_AFTER_MS}`,
          `sentinel failover-timeout ${MASTER_NAME} ${FAILOVER_TIMEOUT_MS}`,
          `sentinel known-replica ${MASTER_NAME} 127.0.0.1 ${knownPort(replica)}`,
          ...(dataPassword === undefined ? [] : [`sentinel auth-pass ${MASTER_NAME} ${dataPassword}`]),
          ...(sentinelPassword === undefined ? [] : [`requirepass ${sentinelPassword}`, `sentinel sentinel-pass ${sentinelPassword}`]),
          ...sentinelTlsPorts.flatMap((other, j) => (j === index ? [] : [`sentinel known-sentinel ${MASTER_NAME} 127.0.0.1 ${other} ${ids[j]}`])),
          "",
        ].join("\n"),
      ),
    ),
  );
  const sentinels = sentinelPorts.map((port) => client(t, port, sentinelPassword));
  // Each Sentinel connected to the primary and sees the replica's link up: a failover can happen.
  await until("the Sentinels to see the primary and its replica", 30_000, async () => {
    for (const sentinel of sentinels) {
      const replicas = (await sentinel.call("SENTINEL", "REPLICAS", MASTER_NAME)) as string[][];
      const fields = replicas.map((entry) => new Map(entry.flatMap((value, i) => (i % 2 === 0 ? [[value, entry[i + 1] ?? ""] as const] : []))));
      if (!fields.some((replicaFields) => replicaFields.get("master-link-status") === "ok" && replicaFields.get("flags") === "slave")) {
        return false;
      }
    }
    return true;
  });

  if (nat !== undefined) {
    // Each Sentinel's command and pub/sub links to the primary go through the proxy, and so does the
    // replication: all made before the proxy stops taking connections.
    const primaryClient = client(t, primary.port, dataPassword);
    await until("every Sentinel's two links to the primary", 30_000, async () => {
      const names = ((await primaryClient.call("CLIENT", "LIST")) as string).match(/ name=sentinel-\S+-(cmd|pubsub) /g) ?? [];
      return names.length >= 2 * sentinelPorts.length;
    });
    nat.refuseNewConnections();
  }

  const primaryPortOf = async (sentinel: Redis): Promise<number> => Number(((await sentinel.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)) as string[])[1]);
  const deployment: SentinelDeployment = {
    nodes,
    sentinelPorts: sentinelTlsPorts,
    url: `${tls === undefined ? "redis" : "rediss"}+sentinel://${sentinelTlsPorts.map((port) => `127.0.0.1:${port}`).join(",")}/${MASTER_NAME}`,
    caFile: tls?.caFile,
    natMap: nat === undefined ? "" : `127.0.0.1:${nat.port}=127.0.0.1:${primary.port}`,
    announcedPrimaryPort: knownPort(primary),
    primary: async () => {
      const ports = new Set(await Promise.all(sentinels.map(primaryPortOf)));
      return ports.size === 1 ? nodes.find((node) => ports.has(knownPort(node))) : undefined;
    },
    waitForPrimary: async (node, timeoutMs = 30_000) => {
      const nodeClient = client(t, node.port, dataPassword);
      await until(`every Sentinel to name port ${knownPort(node)} the primary`, timeoutMs, async () => {
        const ports = await Promise.all(sentinels.map(primaryPortOf));
        return ports.every((port) => port === knownPort(node)) && (await nodeClient.info("replication")).includes("role:master");
      });
    },
    failover: async () => {
      await (sentinels[0] as Redis).call("SENTINEL", "FAILOVER", MASTER_NAME);
    },
    inspect: (node) => client(t, node.port, dataPassword),
  };
  return deployment;
}
