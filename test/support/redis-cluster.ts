/*
 * Starts a real Redis Cluster: `masters` redis-server processes and their replicas (none by default;
 * test/support/redis-server.ts, each in its own temp directory with its own nodes.conf) joined by
 * `redis-cli --cluster create`, or by hand when the nodes announce ports of their own (see
 * `announceUnreachablePorts`).
 * Every node is stopped by process group when the test (or file) ends, also on failure.
 */
import { execFile } from "node:child_process";
import { type AddressInfo, type Socket, createServer } from "node:net";
import type { TestContext } from "node:test";
import { promisify } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { type RedisTestServer, freeLoopbackPort, startRedisServer } from "./redis-server.js";
import { makeTestTlsFiles } from "./test-tls.js";

const run = promisify(execFile);

export const REDIS_CLI_BINARY = process.env.REDIS_CLI_BINARY ?? "redis-cli";

export interface RedisClusterOptions {
  readonly masters?: number;
  /** Replicas of each master (redis-cli --cluster-replicas); 0 by default. */
  readonly replicas?: number;
  /** cluster-node-timeout: how long a master may be unreachable before the others declare it failed. */
  readonly nodeTimeoutMs?: number;
  readonly appendOnly?: boolean;
  /** More `--name value` arguments for every node, e.g. ["--appendfsync", "everysec"] (after the helper's own). */
  readonly extraArgs?: readonly string[];
  /** cluster-require-full-coverage (Redis's default: yes, every slot refused while one is not served). */
  readonly requireFullCoverage?: boolean;
  /**
   * Each node announces (`cluster-announce-port`: CLUSTER SLOTS, CLUSTER NODES, MOVED, ASK) a loopback
   * port other than its own, on which a listener of this helper takes connections and never answers,
   * as a node in a container announces an address its clients outside cannot use; the cluster bus
   * keeps the real ports. Clients reach the nodes only through `natMap`. Masters only; joined by hand
   * (ADDSLOTSRANGE, MEET), since `redis-cli --cluster create` follows the announced addresses.
   */
  readonly announceUnreachablePorts?: boolean;
  /**
   * TLS by host name, as AWS ElastiCache with TLS: each node also listens on a `tls-port` with a
   * certificate for `localhost` only (no IP address) from a fresh test CA (`caFile`), runs its cluster
   * bus on TLS, and announces itself as `localhost` at its TLS port (`cluster-announce-hostname`,
   * `cluster-preferred-endpoint-type hostname`); `url` is `rediss://localhost:<TLS port>`. The plain
   * ports stay, for the helper's own commands. Masters only; joined by hand.
   */
  readonly tlsByHostName?: boolean;
}

/** The steps of `redis-cli --cluster reshard` for one slot. */
export interface SlotMove {
  /** SETSLOT IMPORTING on the target, MIGRATING on the source. */
  begin(): Promise<void>;
  /** MIGRATE of these keys from the source to the target. */
  migrate(keys: readonly string[]): Promise<void>;
  /** MIGRATE of the slot's other keys, SETSLOT NODE on every node, and a wait until they all agree. */
  finish(): Promise<void>;
}

export interface RedisTestCluster {
  readonly nodes: readonly RedisTestServer[];
  /** `redis://127.0.0.1:<port>` of the first node (with tlsByHostName: `rediss://localhost:<TLS port>`). */
  readonly url: string;
  /** With tlsByHostName: the test CA's certificate (for NODE_EXTRA_CA_CERTS). */
  readonly caFile: string | undefined;
  /** Runs redis-cli against the node on `port`; resolves with its stdout. */
  cli(port: number, ...args: string[]): Promise<string>;
  /** The node (its port) that serves `slot` now, from CLUSTER SLOTS as node `via` sees it. */
  ownerOfSlot(slot: number, via?: number): Promise<number>;
  /** CLUSTER KEYSLOT of `key`. */
  keySlot(key: string): Promise<number>;
  /** Each node's port as the cluster announces it, in the order of `nodes` (its real port unless announceUnreachablePorts). */
  readonly announcedPorts: readonly number[];
  /** COGMENT_MODEL_REGISTRY_REDIS_NAT_MAP's value: each announced address to the real one ("" unless announceUnreachablePorts). */
  readonly natMap: string;
  /** announceUnreachablePorts: closes the listeners on the announced ports; from then on a connection to one is refused. */
  refuseAnnouncedPorts(): Promise<void>;
  /** Moves `slot` from the master on port `source` to the one on `target`, step by step. */
  slotMove(slot: number, source: number, target: number): SlotMove;
  /** Resolves once every running node says cluster_state:ok and agrees on who serves every slot. */
  waitUntilOk(timeoutMs?: number): Promise<void>;
  /** Kills every node and removes their directories. */
  close(): Promise<void>;
}

/** Starts the cluster; with `t`, it is closed when that test ends, else call close() (an `after` hook). */
export async function startRedisCluster(t: TestContext | undefined, options: RedisClusterOptions = {}): Promise<RedisTestCluster> {
  const replicas = options.replicas ?? 0;
  const count = (options.masters ?? 3) * (1 + replicas);
  const nodeTimeout = String(options.nodeTimeoutMs ?? 1000);
  const announcing = options.announceUnreachablePorts === true;
  const tlsByName = options.tlsByHostName === true;
  if ((announcing || tlsByName) && replicas > 0) {
    throw new Error("announceUnreachablePorts and tlsByHostName: masters only");
  }
  if (announcing && tlsByName) {
    throw new Error("announceUnreachablePorts or tlsByHostName, not both");
  }
  const silent = announcing ? await Promise.all(Array.from({ length: count }, () => silentListener())) : [];
  const tls = tlsByName ? await makeTestTlsFiles("DNS:localhost") : undefined;
  const ports = announcing || tlsByName ? await distinctFreePorts(count, new Set(silent.map((listener) => listener.port))) : [];
  const tlsPorts = tlsByName ? await distinctFreePorts(count, new Set(ports)) : [];
  /** The port each node announces, when not its own (the cluster bus listens on it + 10000 with TLS). */
  const announcedPortOf = (index: number): number | undefined => (announcing ? silent[index]?.port : tlsPorts[index]);
  const nodes = await Promise.all(
    Array.from({ length: count }, (_, index) => {
      const port = ports[index];
      const tlsPort = tlsPorts[index];
      const announce =
        port === undefined
          ? []
          : tls !== undefined && tlsPort !== undefined
            ? [
                ...tls.directives(tlsPort).flatMap(([name, value]) => [`--${name}`, value as string]),
                ...["--tls-cluster", "yes", "--cluster-announce-hostname", "localhost", "--cluster-preferred-endpoint-type", "hostname"],
              ]
            : ["--cluster-announce-port", String(announcedPortOf(index)), "--cluster-announce-bus-port", String(port + CLUSTER_BUS_PORT_OFFSET)];
      return startRedisServer(t, {
        ...(port === undefined ? {} : { port }),
        appendOnly: options.appendOnly ?? true,
        extraArgs: ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", nodeTimeout,
          "--cluster-require-full-coverage", options.requireFullCoverage === false ? "no" : "yes", ...announce,
          ...(options.extraArgs ?? []),
        ],
      });
    }),
  );
  const cli = async (port: number, ...args: string[]): Promise<string> =>
    (await run(REDIS_CLI_BINARY, ["-h", "127.0.0.1", "-p", String(port), ...args], { timeout: 30_000 })).stdout;
  const first = nodes[0] as RedisTestServer;
  const announcedPorts = nodes.map((node, index) => announcedPortOf(index) ?? node.port);
  /** Announced port → real port. */
  const realPort = new Map(announcedPorts.map((announced, index) => [announced, (nodes[index] as RedisTestServer).port]));
  const refuseAnnouncedPorts = async (): Promise<void> => {
    await Promise.all(silent.map((listener) => listener.close()));
  };
  const close = async (): Promise<void> => {
    await Promise.all([...nodes.map((node) => node.close()), refuseAnnouncedPorts()]);
    await tls?.remove();
  };
  const join =
    announcing || tlsByName
    ? joinByHand(nodes, cli, nodes.map((node, index) => tlsPorts[index] ?? node.port))
    : run(
        REDIS_CLI_BINARY,
        ["--cluster", "create", ...nodes.map((node) => `127.0.0.1:${node.port}`), "--cluster-replicas", String(replicas), "--cluster-yes"],
        { timeout: 30_000 },
      );
  await join.catch(async (error: unknown) => {
    await close();
    throw error;
  });

  /** Slot → port of the master serving it, from CLUSTER NODES as the node on `port` sees it. */
  const slotOwners = async (port: number): Promise<Map<number, number>> => {
    const owners = new Map<number, number>();
    for (const line of (await cli(port, "cluster", "nodes")).trim().split("\n")) {
      // <id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot ranges...>
      const fields = line.split(" ");
      if (!(fields[2] ?? "").split(",").includes("master") || (fields[2] ?? "").includes("fail")) {
        continue;
      }
      const announced = Number(/:(\d+)@/.exec(fields[1] ?? "")?.[1]);
      const owner = realPort.get(announced) ?? announced;
      for (const range of fields.slice(8)) {
        if (range.startsWith("[")) {
          continue; // a slot migrating or importing: still served by the node whose range holds it
        }
        const [from, to] = range.split("-").map(Number);
        for (let slot = from as number; slot <= (to ?? from as number); slot++) {
          owners.set(slot, owner);
        }
      }
    }
    return owners;
  };

  const cluster: RedisTestCluster = {
    nodes,
    close,
    url: tlsByName ? `rediss://localhost:${announcedPorts[0]}` : first.url,
    caFile: tls?.caFile,
    announcedPorts,
    natMap: announcing ? announcedPorts.map((announced, index) => `127.0.0.1:${announced}=127.0.0.1:${(nodes[index] as RedisTestServer).port}`).join(",") : "",
    refuseAnnouncedPorts,
    slotMove: (slot, source, target) => slotMove(cluster, slot, source, target),
    cli,
    keySlot: async (key) => Number((await cli(first.port, "cluster", "keyslot", key)).trim()),
    ownerOfSlot: async (slot, via = first.port) => {
      const owner = (await slotOwners(via)).get(slot);
      if (owner === undefined) {
        throw new Error(`no node serves slot ${slot}`);
      }
      return owner;
    },
    waitUntilOk: async (timeoutMs = 60_000) => {
      const deadline = Date.now() + timeoutMs;
      let last = "";
      for (;;) {
        try {
          const running = nodes.filter((node) => node.running());
          const states = await Promise.all(running.map((node) => cli(node.port, "cluster", "info")));
          const maps = await Promise.all(running.map((node) => slotOwners(node.port)));
          const agreed = maps.every((map) => map.size === 16384 && [...map].every(([slot, owner]) => maps[0]?.get(slot) === owner));
          if (states.every((state) => state.includes("cluster_state:ok")) && agreed) {
            return;
          }
          last = states.map((state) => /cluster_state:\w+/.exec(state)?.[0]).join(", ");
        } catch (error) {
          last = (error as Error).message;
        }
        if (Date.now() > deadline) {
          throw new Error(`the Redis Cluster is not ok after ${timeoutMs} ms: ${last}`);
        }
        await sleep(50);
      }
    },
  };
  try {
    await cluster.waitUntilOk();
  } catch (error) {
    await close();
    throw error;
  }
  return cluster;
}

/** Redis's default: a node's cluster bus listens on its port + 10000. */
const CLUSTER_BUS_PORT_OFFSET = 10_000;

/** A loopback listener that takes connections, reads what comes and never answers; close() ends them. */
async function silentListener(): Promise<{ readonly port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    socket.resume();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  let closed: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      closed ??= new Promise((resolve) => {
        for (const socket of sockets) {
          socket.destroy();
        }
        server.close(() => resolve());
      });
      return closed;
    },
  };
}

/** `count` free loopback ports, distinct from each other and from `taken`, whose bus ports (+10000) are free too. */
async function distinctFreePorts(count: number, taken: ReadonlySet<number>): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) {
    const port = await freeLoopbackPort();
    if (port + CLUSTER_BUS_PORT_OFFSET <= 65535 && !taken.has(port) && !ports.includes(port)) {
      ports.push(port);
    }
  }
  return ports;
}

/**
 * ADDSLOTSRANGE (an even share each), distinct config epochs, then MEET of every node by the first, at
 * `meetPorts` (the cluster bus listens on each + 10000).
 */
async function joinByHand(
  nodes: readonly RedisTestServer[],
  cli: (port: number, ...args: string[]) => Promise<string>,
  meetPorts: readonly number[],
): Promise<void> {
  const share = Math.ceil(16384 / nodes.length);
  for (const [index, node] of nodes.entries()) {
    await cli(node.port, "cluster", "addslotsrange", String(index * share), String(Math.min(16383, (index + 1) * share - 1)));
    await cli(node.port, "cluster", "set-config-epoch", String(index + 1));
  }
  const first = nodes[0] as RedisTestServer;
  for (const port of meetPorts.slice(1)) {
    await cli(first.port, "cluster", "meet", "127.0.0.1", String(port), String(port + CLUSTER_BUS_PORT_OFFSET));
  }
}

/** The steps of `redis-cli --cluster reshard` for one slot: IMPORTING/MIGRATING, MIGRATE of its keys, SETSLOT NODE everywhere. */
function slotMove(cluster: RedisTestCluster, slot: number, source: number, target: number): SlotMove {
  const id = async (port: number): Promise<string> => (await cluster.cli(port, "cluster", "myid")).trim();
  let targetId = "";
  const migrate = async (keys: readonly string[]): Promise<void> => {
    await cluster.cli(source, "migrate", "127.0.0.1", String(target), "", "0", "5000", "keys", ...keys);
  };
  return {
    async begin(): Promise<void> {
      const sourceId = await id(source);
      targetId = await id(target);
      await cluster.cli(target, "cluster", "setslot", String(slot), "importing", sourceId);
      await cluster.cli(source, "cluster", "setslot", String(slot), "migrating", targetId);
    },
    migrate,
    async finish(): Promise<void> {
      for (;;) {
        const keys = (await cluster.cli(source, "cluster", "getkeysinslot", String(slot), "100")).trim().split("\n").filter((key) => key !== "");
        if (keys.length === 0) {
          break;
        }
        await migrate(keys);
      }
      for (const node of cluster.nodes) {
        await cluster.cli(node.port, "cluster", "setslot", String(slot), "node", targetId);
      }
      await cluster.waitUntilOk();
    },
  };
}
