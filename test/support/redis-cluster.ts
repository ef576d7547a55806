/*
 * Starts a real Redis Cluster: `masters` redis-server processes and their replicas (none by default;
 * test/support/redis-server.ts, each in its own temp directory with its own nodes.conf) joined by
 * `redis-cli --cluster create`.
 * Every node is stopped by process group when the test (or file) ends, also on failure.
 */
import { execFile } from "node:child_process";
import type { TestContext } from "node:test";
import { promisify } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { type RedisTestServer, startRedisServer } from "./redis-server.js";

const run = promisify(execFile);

export const REDIS_CLI_BINARY = process.env.REDIS_CLI_BINARY ?? "redis-cli";

export interface RedisClusterOptions {
  readonly masters?: number;
  /** Replicas of each master (redis-cli --cluster-replicas); 0 by default. */
  readonly replicas?: number;
  /** cluster-node-timeout: how long a master may be unreachable before the others declare it failed. */
  readonly nodeTimeoutMs?: number;
  readonly appendOnly?: boolean;
  /** cluster-require-full-coverage (Redis's default: yes, every slot refused while one is not served). */
  readonly requireFullCoverage?: boolean;
}

export interface RedisTestCluster {
  readonly nodes: readonly RedisTestServer[];
  /** `redis://127.0.0.1:<port>` of the first node. */
  readonly url: string;
  /** Runs redis-cli against the node on `port`; resolves with its stdout. */
  cli(port: number, ...args: string[]): Promise<string>;
  /** The node (its port) that serves `slot` now, from CLUSTER SLOTS as node `via` sees it. */
  ownerOfSlot(slot: number, via?: number): Promise<number>;
  /** CLUSTER KEYSLOT of `key`. */
  keySlot(key: string): Promise<number>;
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
  const nodes = await Promise.all(
    Array.from({ length: count }, () =>
      startRedisServer(t, {
        appendOnly: options.appendOnly ?? true,
        extraArgs: ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", nodeTimeout,
          "--cluster-require-full-coverage", options.requireFullCoverage === false ? "no" : "yes",
        ],
      }),
    ),
  );
  const cli = async (port: number, ...args: string[]): Promise<string> =>
    (await run(REDIS_CLI_BINARY, ["-h", "127.0.0.1", "-p", String(port), ...args], { timeout: 30_000 })).stdout;
  const first = nodes[0] as RedisTestServer;
  const close = async (): Promise<void> => {
    await Promise.all(nodes.map((node) => node.close()));
  };
  await run(
    REDIS_CLI_BINARY,
    ["--cluster", "create", ...nodes.map((node) => `127.0.0.1:${node.port}`), "--cluster-replicas", String(replicas), "--cluster-yes"],
    { timeout: 30_000 },
  ).catch(async (error: unknown) => {
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
      const owner = Number(/:(\d+)@/.exec(fields[1] ?? "")?.[1]);
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
    url: first.url,
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
