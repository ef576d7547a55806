/**
 * The Redis settings shared mode relies on (docs/redis-mode.md, "Settings to use"), read once at the
 * first connection and logged when they differ: a misconfigured Redis otherwise shows only when it
 * evicts a model's numbering or loses the last commits in a crash, long after the deployment.
 * Nothing is changed on the Redis: the settings are the deployment's (a managed Redis may not even
 * allow reading them; the check is then skipped, and says so).
 */
import type { Logger } from "pino";
import type { RedisConnection } from "./redis-connection.js";

/** A setting that differs from the recommended one, and what that costs. */
export interface SettingAdvice {
  readonly setting: string;
  readonly found: string;
  readonly recommended: string;
  readonly message: string;
}

export const CHECKED_SETTINGS = ["maxmemory", "maxmemory-policy", "appendonly", "appendfsync", "rdbcompression"] as const;

const SAFE_POLICIES = new Set(["volatile-lru", "volatile-lfu", "volatile-random", "noeviction"]);

/** The advice on Redis's settings (as CONFIG GET gives them); settings Redis did not give are not judged. */
export function adviseOnRedisSettings(settings: ReadonlyMap<string, string>): SettingAdvice[] {
  const advice: SettingAdvice[] = [];
  const policy = settings.get("maxmemory-policy");
  if (policy !== undefined && !SAFE_POLICIES.has(policy)) {
    advice.push({
      setting: "maxmemory-policy",
      found: policy,
      recommended: "volatile-lru",
      message: policy.startsWith("allkeys-")
        ? `Redis's maxmemory-policy is ${policy}: under memory pressure it may evict models, their version numbering and their latest versions (numbers could then be handed out again); set maxmemory-policy volatile-lru`
        : `Redis's maxmemory-policy is ${policy}: it evicts the uploads in progress first; set maxmemory-policy volatile-lru`,
    });
  }
  if (settings.get("maxmemory") === "0") {
    advice.push({
      setting: "maxmemory",
      found: "0",
      recommended: "the bytes the instances' transient versions may take",
      message:
        "Redis's maxmemory is 0 (no limit): the transient versions of all instances are bounded only by the Redis host's memory; set maxmemory to the shared budget",
    });
  }
  const appendOnly = settings.get("appendonly");
  const appendFsync = settings.get("appendfsync");
  if (appendOnly === "no") {
    advice.push({
      setting: "appendonly",
      found: "no",
      recommended: "yes (with appendfsync always)",
      message:
        "Redis's appendonly is no: a restart of Redis loses every transient version (archived ones are imported again from the archive); set appendonly yes with appendfsync always",
    });
  } else if (appendOnly === "yes" && appendFsync !== undefined && appendFsync !== "always") {
    advice.push({
      setting: "appendfsync",
      found: appendFsync,
      recommended: "always",
      message: `Redis's appendfsync is ${appendFsync}: a crash of the Redis host may lose the last commits, acknowledged ones included; set appendfsync always`,
    });
  }
  if (settings.get("rdbcompression") === "yes") {
    advice.push({
      setting: "rdbcompression",
      found: "yes",
      recommended: "no",
      message:
        "Redis's rdbcompression is yes: every AOF rewrite, RDB snapshot and replica resynchronization runs LZF over model data that does not compress (2-4x the CPU of a rewrite); set rdbcompression no",
    });
  }
  return advice;
}

/** What the check needs of an ioredis client (Redis or Cluster). */
export interface ConfigReader {
  call(command: string, ...args: string[]): Promise<unknown>;
}

/** CONFIG GET's reply (name, value, name, value...) as a map. */
export function settingsFromReply(reply: unknown): Map<string, string> {
  const settings = new Map<string, string>();
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) {
      settings.set(String(reply[i]), String(reply[i + 1]));
    }
  }
  return settings;
}

/** Reads the settings and logs each advice as a warning, or one line saying they are as recommended (or unreadable). */
export async function checkRedisSettings(client: ConfigReader, log: Logger, redis: string): Promise<void> {
  let settings: Map<string, string>;
  try {
    settings = settingsFromReply(await client.call("CONFIG", "GET", ...CHECKED_SETTINGS));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    log.info({ redis, reason }, "Redis's settings could not be read with CONFIG GET: they are not checked (see docs/redis-mode.md, \"Settings to use\")");
    return;
  }
  const advice = adviseOnRedisSettings(settings);
  for (const { setting, found, recommended, message } of advice) {
    log.warn({ redis, setting, found, recommended }, message);
  }
  if (advice.length === 0) {
    log.info({ redis, settings: Object.fromEntries(settings) }, "Redis's settings are as docs/redis-mode.md recommends");
  }
}

/** checkRedisSettings once, when the connection is first healthy (after a Redis Cluster was detected). */
export function checkRedisSettingsWhenConnected(connection: RedisConnection, log: Logger): void {
  const onHealth = (healthy: boolean): void => {
    if (healthy) {
      connection.off("health", onHealth);
      void checkRedisSettings(connection.commands, log, connection.address);
    }
  };
  connection.on("health", onHealth);
}
