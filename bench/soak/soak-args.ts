/**
 * Command line of the soak test:
 *   node dist/bench/soak/soak.js [--duration=120s] [--clients=64] [--workers=4] [--quick]
 *                           [--cache-mib=256] [--expiration=10s] [--no-restart]
 */
import { MIB } from "../support/server-process.js";

export interface SoakOptions {
  readonly durationMs: number;
  readonly clients: number;
  /** Processes the clients are spread over. */
  readonly workers: number;
  readonly quick: boolean;
  readonly cacheMaxBytes: number;
  /** COGMENT_MODEL_REGISTRY_VERSION_CACHE_EXPIRATION, a Go duration. */
  readonly expiration: string;
  /** After the run, restart the server on the same archive and verify the archived versions again. */
  readonly restartCheck: boolean;
}

const USAGE =
  "usage: node dist/bench/soak/soak.js [--duration=120s] [--clients=64] [--workers=4] [--quick] " +
  "[--cache-mib=256] [--expiration=10s] [--no-restart]";

/** "120s", "2m", "1500ms" or a bare number of seconds. */
export function parseDurationMs(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (match === null) {
    throw new Error(`invalid duration "${text}": expected e.g. 120s, 2m, 1500ms\n${USAGE}`);
  }
  const value = Number(match[1]);
  const unit = match[2] ?? "s";
  return Math.round(unit === "ms" ? value : unit === "m" ? value * 60_000 : value * 1000);
}

function integer(name: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`--${name}=${text}: expected an integer from ${min} to ${max}\n${USAGE}`);
  }
  return value;
}

export function parseSoakArgs(argv: readonly string[]): SoakOptions {
  const known = new Set(["duration", "clients", "workers", "cache-mib", "expiration"]);
  const flags = new Map<string, string>();
  let quick = false;
  let restartCheck = true;
  for (const arg of argv) {
    if (arg === "--quick") {
      quick = true;
    } else if (arg === "--no-restart") {
      restartCheck = false;
    } else {
      const match = /^--([a-z-]+)=(.*)$/.exec(arg);
      if (match === null || !known.has(match[1] ?? "")) {
        throw new Error(`unknown argument "${arg}"\n${USAGE}`);
      }
      flags.set(match[1] as string, match[2] as string);
    }
  }
  const duration = flags.get("duration");
  const durationMs = duration === undefined ? (quick ? 20_000 : 120_000) : parseDurationMs(duration);
  if (durationMs < 4000 || durationMs > 6 * 3600_000) {
    throw new Error(`--duration: from 4 s to 6 h\n${USAGE}`);
  }
  const clients = integer("clients", flags.get("clients") ?? "64", 1, 1024);
  const workers = Math.min(clients, integer("workers", flags.get("workers") ?? "4", 1, 32));
  // Quick runs are too short to fill a large cache before their warm-up ends.
  const cacheMiB = integer("cache-mib", flags.get("cache-mib") ?? (quick ? "64" : "256"), 8, 65_536);
  // Short enough that transient versions expire as well as being evicted for room.
  const expiration = flags.get("expiration") ?? (quick ? "3s" : "10s");
  if (!/^\d+(ns|us|ms|s|m|h)$/.test(expiration)) {
    throw new Error(`--expiration=${expiration}: expected a Go duration such as 20s\n${USAGE}`);
  }
  return { durationMs, clients, workers, quick, cacheMaxBytes: cacheMiB * MIB, expiration, restartCheck };
}
