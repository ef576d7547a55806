import { setTimeout as sleep } from "node:timers/promises";
import type { TestContext } from "node:test";
import { Redis } from "ioredis";

/**
 * A connection in MONITOR mode, its "error" listener attached before it connects. ioredis (5.x) enters
 * the monitoring state a microtask after MONITOR's OK: a command line that arrives in the same read
 * (the instances' once-a-second PINGs, any background read) finds no command waiting and is emitted as
 * an "error" ("Command queue state error"), which `redis.monitor()` leaves without a listener. Resolves
 * once monitoring; `onCommand` gets every command's arguments from then on, in the order Redis ran
 * them, and where it came from (`host:port` of the client, "lua" for a command run by a script).
 */
export async function startMonitor(t: TestContext, url: string, onCommand: (args: string[], source: string) => void): Promise<Redis> {
  const monitor = new Redis(url, { monitor: true, lazyConnect: true, maxRetriesPerRequest: 1 });
  monitor.on("error", () => undefined); // that race, and reconnection attempts once the test's Redis is gone
  monitor.on("monitor", (_time: string, args: string[], source: string) => onCommand(args, source));
  t.after(() => monitor.disconnect());
  await monitor.connect();
  while ((monitor.status as string) !== "monitoring") {
    await sleep(1);
  }
  return monitor;
}
