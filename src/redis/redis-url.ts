import { formatNode } from "./nat-map.js";
import { type SentinelAddress, type SentinelTarget, SENTINEL_URL_FORM, describeSentinelTarget, describeSentinelUrl, isSentinelUrl, parseSentinelUrl } from "./redis-sentinel-url.js";

/** Where the shared Redis is, from COGMENT_MODEL_REGISTRY_REDIS_URL. */
export interface RedisEndpoint {
  /** The Redis; with `sentinel`, the first Sentinel (the primary's address comes from the Sentinels). */
  readonly host: string;
  readonly port: number;
  /** `rediss://`: TLS, the host name checked against the server's certificate. */
  readonly tls: boolean;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly db: number;
  /**
   * Every node given when COGMENT_MODEL_REGISTRY_REDIS_URL lists several (comma-separated), this one
   * first: a Redis Cluster, these its seed nodes. Absent for one URL (a Cluster is then detected).
   */
  readonly clusterSeeds?: readonly RedisEndpoint[];
  /** Set (only) by the Sentinel form: the primary is the one these Sentinels name (redis-sentinel-url.ts). */
  readonly sentinel?: SentinelTarget;
}

/** Thrown by parseRedisUrl; the message says what is wrong and the accepted form. */
export class RedisUrlError extends Error {
  override readonly name = "RedisUrlError";
}

export const REDIS_URL_FORM = "redis://[user:password@]host[:port][/db] or rediss://... for TLS (port 6379 and db 0 by default)";
/** Every form COGMENT_MODEL_REGISTRY_REDIS_URL accepts. */
export const REDIS_URL_FORMS = `${REDIS_URL_FORM}, or ${SENTINEL_URL_FORM}`;

const DEFAULT_PORT = 6379;
/** Redis's default `databases 16` allows 0 to 15; a server configured with more accepts higher. */
const MAX_DB = 1_000_000;

/** Parses `redis://[user:password@]host[:port][/db]` (or `rediss://`); never echoes the password in errors. */
export function parseRedisUrl(text: string): RedisEndpoint {
  if (isSentinelUrl(text)) {
    const parsed = parseSentinelUrl(text, (reason) => new RedisUrlError(reason));
    const first = parsed.sentinel.sentinels[0] as SentinelAddress;
    return { host: first.host, port: first.port, tls: parsed.tls, username: parsed.username, password: parsed.password, db: parsed.db, sentinel: parsed.sentinel };
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new RedisUrlError(`not a URL; expected ${REDIS_URL_FORM}`);
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    throw new RedisUrlError(`scheme "${url.protocol.slice(0, -1)}" is not supported; expected ${REDIS_URL_FORMS}`);
  }
  if (url.hostname === "") {
    throw new RedisUrlError(`the host is missing; expected ${REDIS_URL_FORM}`);
  }
  if (url.search !== "" || url.hash !== "") {
    throw new RedisUrlError(`query parameters and fragments are not supported; expected ${REDIS_URL_FORM}`);
  }
  const dbText = url.pathname.replace(/^\//, "");
  if (dbText !== "" && !/^[0-9]+$/.test(dbText)) {
    // Not echoed: a password holding an unencoded "/" ends up here.
    throw new RedisUrlError(`the database (the path after the host) is not a number (a "/" in a password must be written %2F); expected ${REDIS_URL_FORM}`);
  }
  const db = dbText === "" ? 0 : Number(dbText);
  if (db > MAX_DB) {
    throw new RedisUrlError(`database ${dbText} is out of range; expected ${REDIS_URL_FORM}`);
  }
  return {
    // IPv6 literals come bracketed from URL; the socket wants them bare.
    host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: url.port === "" ? DEFAULT_PORT : Number(url.port),
    tls: url.protocol === "rediss:",
    username: url.username === "" ? undefined : decodeURIComponent(url.username),
    password: url.password === "" ? undefined : decodeURIComponent(url.password),
    db,
  };
}

/** The form of several URLs: the seed nodes of one Redis Cluster. */
export const REDIS_CLUSTER_URLS_FORM =
  "several URLs are nodes of one Redis Cluster, separated by commas, e.g. redis://node-a:6379,redis://node-b:6379, all with the same scheme, user and password and no database (one URL suffices: a Cluster is detected)";

/**
 * Parses COGMENT_MODEL_REGISTRY_REDIS_URL: one URL (see parseRedisUrl), or several separated by
 * commas, the seed nodes of a Redis Cluster (`clusterSeeds`; the first one is the endpoint itself).
 */
export function parseRedisUrls(text: string): RedisEndpoint {
  if (isSentinelUrl(text)) {
    return parseRedisUrl(text); // its commas separate Sentinels
  }
  const parts = splitUrlList(text);
  if (parts.length === 1) {
    return parseRedisUrl(text);
  }
  if (parts.some((part) => part === "")) {
    throw listError("an empty URL in the comma-separated list");
  }
  const seeds = parts.map((part, index) => {
    try {
      return parseRedisUrl(part);
    } catch (error) {
      throw new RedisUrlError(`URL ${index + 1} of the list: ${(error as Error).message}`);
    }
  });
  const first = seeds[0] as RedisEndpoint;
  for (const [index, seed] of seeds.entries()) {
    if (seed.sentinel !== undefined) {
      throw listError(`URL ${index + 1} of the list is a Sentinel URL, which stands alone`, REDIS_URL_FORMS);
    }
    if (seed.tls !== first.tls || seed.username !== first.username || seed.password !== first.password) {
      throw listError(`URL ${index + 1} of the list differs from the first in scheme, user or password`);
    }
    if (seed.db !== 0) {
      throw listError(`URL ${index + 1} of the list names database ${seed.db}, but a Redis Cluster has only database 0`);
    }
  }
  return { ...first, clusterSeeds: seeds };
}

/** An error of a comma-separated list: the reason, the list's form and the accepted URL form(s). */
function listError(reason: string, accepted: string = REDIS_URL_FORM): RedisUrlError {
  return new RedisUrlError(`${reason}; ${REDIS_CLUSTER_URLS_FORM}; expected ${accepted}`);
}

/**
 * The URLs of a comma-separated list. A comma not followed by a scheme (`x://`) belongs to the URL
 * before it (a password may hold one), so one URL with a comma in its password stays one URL.
 */
function splitUrlList(text: string): string[] {
  const parts: string[] = [];
  for (const piece of text.split(",")) {
    const previous = parts.length - 1;
    if (previous >= 0 && piece.trim() !== "" && !/^\s*[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(piece) && parts[previous] !== "") {
      parts[previous] = `${parts[previous] as string},${piece}`;
    } else {
      parts.push(piece);
    }
  }
  return parts.map((part) => part.trim());
}

/** `host:port` (Sentinel form: `master "name" of Sentinels host:port,...`), as errors and logs name the server. */
export function redisAddress(endpoint: RedisEndpoint): string {
  if (endpoint.sentinel !== undefined) {
    return describeSentinelTarget(endpoint.sentinel);
  }
  return formatNode(endpoint);
}

/** The URL with the password masked, safe to log. */
export function describeRedisEndpoint(endpoint: RedisEndpoint): string {
  if (endpoint.sentinel !== undefined) {
    return describeSentinelUrl({ ...endpoint, sentinel: endpoint.sentinel });
  }
  const scheme = endpoint.tls ? "rediss" : "redis";
  const user = endpoint.username === undefined ? "" : encodeURIComponent(endpoint.username);
  const credentials = endpoint.password === undefined ? (user === "" ? "" : `${user}@`) : `${user}:***@`;
  const describe = (one: RedisEndpoint): string => `${scheme}://${credentials}${redisAddress(one)}/${one.db}`;
  return endpoint.clusterSeeds === undefined ? describe(endpoint) : endpoint.clusterSeeds.map(describe).join(",");
}
