/**
 * Keeps every instance's subscriber connection out of a real redis-server while their command
 * connections stay: what an instance sees when its change feed is lost (it hears of no deletion or
 * version from the others) but Redis still answers it.
 */
import type { TestContext } from "node:test";
import type { Redis } from "ioredis";

/** Subscriber (pub/sub) connections open on the server `inspector` is connected to. */
export async function pubsubConnections(inspector: Redis): Promise<number> {
  return String(await inspector.call("CLIENT", "LIST", "TYPE", "pubsub"))
    .split("\n")
    .filter((line) => line.trim() !== "").length;
}

/**
 * Drops the subscriber connections and leaves no room for them to come back (maxclients set to the
 * connections left), until the test ends (maxclients 10000 again).
 */
export async function keepSubscribersOut(t: TestContext, inspector: Redis): Promise<void> {
  const connected = Number(/connected_clients:(\d+)/.exec(String(await inspector.call("INFO", "clients")))?.[1]);
  await inspector.call("CONFIG", "SET", "maxclients", String(connected - (await pubsubConnections(inspector))));
  t.after(() => inspector.call("CONFIG", "SET", "maxclients", "10000").catch(() => undefined));
  await inspector.call("CLIENT", "KILL", "TYPE", "pubsub");
}
