/**
 * The Sentinel form of COGMENT_MODEL_REGISTRY_REDIS_URL (#17), as redis-vl, prefect/docket and
 * Redis-Sentinel-Url write it:
 * `redis+sentinel://[user:password@]host[:port][,host[:port]...]/master-name[/db][?sentinel_username=...&sentinel_password=...]`.
 * The user and password are the data nodes' (ioredis `username`/`password`); the Sentinels' own, if
 * they require one, are the two query parameters. `rediss+sentinel://`: TLS to the data nodes and to
 * the Sentinels.
 */
import type { RedisOptions } from "ioredis";
import { type NatMap, NO_NAT_MAP, formatNode, ioredisNatMap } from "./nat-map.js";

/** One Sentinel's address. */
export interface SentinelAddress {
  readonly host: string;
  readonly port: number;
}

/** The Sentinels to ask where the primary of `masterName` is, and how to log in to them. */
export interface SentinelTarget {
  readonly masterName: string;
  readonly sentinels: readonly SentinelAddress[];
  readonly username: string | undefined;
  readonly password: string | undefined;
}

/** What parseSentinelUrl reads: the Sentinels, and what parseRedisUrl reads for the data nodes. */
export interface ParsedSentinelUrl {
  readonly sentinel: SentinelTarget;
  readonly tls: boolean;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly db: number;
}

export const SENTINEL_URL_FORM =
  "redis+sentinel://[user:password@]host[:port][,host[:port]...]/master-name[/db][?sentinel_username=...&sentinel_password=...] or rediss+sentinel://... for TLS (Sentinel port 26379 and db 0 by default)";

export const DEFAULT_SENTINEL_PORT = 26379;
const SCHEMES = new Map([
  ["redis+sentinel", false],
  ["rediss+sentinel", true],
]);
const QUERY_PARAMETERS = ["sentinel_username", "sentinel_password"];
/** As in redis-url.ts: Redis's default `databases 16` allows 0 to 15; a server configured with more accepts higher. */
const MAX_DB = 1_000_000;

/** Whether the URL names Sentinels (its scheme, case-insensitive, is redis+sentinel or rediss+sentinel). */
export function isSentinelUrl(text: string): boolean {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(text)?.[1]?.toLowerCase();
  return scheme !== undefined && SCHEMES.has(scheme);
}

/**
 * Parses the Sentinel form. Errors (`fail`'s) never echo any part of the value: a password with an
 * unencoded `/` or `@` would otherwise show up as a host or a master name.
 */
export function parseSentinelUrl(text: string, fail: (reason: string) => Error): ParsedSentinelUrl {
  const expected = (reason: string): Error => fail(`${reason}; expected ${SENTINEL_URL_FORM}`);
  const schemeEnd = text.indexOf("://");
  const tls = schemeEnd === -1 ? undefined : SCHEMES.get(text.slice(0, schemeEnd).toLowerCase());
  if (tls === undefined) {
    throw expected("the scheme is not followed by ://");
  }
  let rest = text.slice(schemeEnd + 3);
  if (rest.includes("#")) {
    throw expected("fragments are not supported");
  }
  const queryStart = rest.indexOf("?");
  const query = readQuery(queryStart === -1 ? "" : rest.slice(queryStart + 1), expected);
  rest = queryStart === -1 ? rest : rest.slice(0, queryStart);
  const pathStart = rest.indexOf("/");
  const authority = pathStart === -1 ? rest : rest.slice(0, pathStart);
  const path = pathStart === -1 ? "" : rest.slice(pathStart + 1);

  const at = authority.lastIndexOf("@");
  const credentials = at === -1 ? undefined : readCredentials(authority.slice(0, at), expected);
  const sentinels = authority
    .slice(at + 1)
    .split(",")
    .map((address, index, all) => readSentinelAddress(address, `Sentinel ${index + 1} of ${all.length}`, expected));

  const segments = path === "" ? [] : path.split("/");
  const masterName = decode(segments[0] ?? "", "the master name", expected);
  if (masterName === "") {
    throw expected("the master name is missing");
  }
  if (segments.length > 2) {
    throw expected("the path has more than a master name and a database");
  }
  const dbText = segments[1] ?? "";
  if (dbText !== "" && !/^[0-9]+$/.test(dbText)) {
    throw expected("the database (after the master name) is not a number");
  }
  const db = dbText === "" ? 0 : Number(dbText);
  if (db > MAX_DB) {
    throw expected("the database is out of range");
  }
  for (const name of query.keys()) {
    if (!QUERY_PARAMETERS.includes(name)) {
      throw expected(`the only query parameters accepted are ${QUERY_PARAMETERS.join(" and ")}`);
    }
  }
  return {
    sentinel: {
      masterName,
      sentinels,
      username: emptyToUndefined(query.get("sentinel_username")),
      password: emptyToUndefined(query.get("sentinel_password")),
    },
    tls,
    username: credentials?.username,
    password: credentials?.password,
    db,
  };
}

/** The ioredis options that make a client follow the primary of `target` (see docs/redis-mode.md, Sentinel). */
export function sentinelClientOptions(
  target: SentinelTarget,
  tls: boolean,
  commandTimeoutMs: number,
  retryDelay: (attempt: number) => number,
  natMap: NatMap = NO_NAT_MAP,
): RedisOptions {
  return {
    sentinels: target.sentinels.map(({ host, port }) => ({ host, port })),
    name: target.masterName,
    role: "master",
    sentinelUsername: target.username,
    sentinelPassword: target.password,
    // One Sentinel that does not answer must not hold the resolution longer than a command may wait.
    sentinelCommandTimeout: commandTimeoutMs,
    // After a round of Sentinels none of which answered; the round goes on forever, as reconnections do.
    sentinelRetryStrategy: retryDelay,
    // Subscribes to +switch-master on the Sentinels: a failover that leaves the old primary up (SENTINEL
    // FAILOVER, a partition) drops the connection at once instead of at its first READONLY.
    failoverDetector: true,
    // The primary the Sentinels name, and the Sentinels they tell of, are reached where the map says.
    ...(natMap.size > 0 ? { natMap: ioredisNatMap(natMap) } : {}),
    ...(tls ? { tls: {}, enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
  };
}

/** How errors and logs name a Sentinel-managed Redis: `master "name" of Sentinels host:port,...`. */
export function describeSentinelTarget(target: SentinelTarget): string {
  return `master "${target.masterName}" of Sentinels ${target.sentinels.map(formatNode).join(",")}`;
}

/** The Sentinel part of the URL with the passwords masked, safe to log. */
export function describeSentinelUrl(parsed: ParsedSentinelUrl): string {
  const scheme = parsed.tls ? "rediss+sentinel" : "redis+sentinel";
  const user = parsed.username === undefined ? "" : encodeURIComponent(parsed.username);
  const credentials = parsed.password === undefined ? (user === "" ? "" : `${user}@`) : `${user}:***@`;
  const query = [
    ...(parsed.sentinel.username === undefined ? [] : [`sentinel_username=${encodeURIComponent(parsed.sentinel.username)}`]),
    ...(parsed.sentinel.password === undefined ? [] : ["sentinel_password=***"]),
  ].join("&");
  const hosts = parsed.sentinel.sentinels.map(formatNode).join(",");
  return `${scheme}://${credentials}${hosts}/${encodeURIComponent(parsed.sentinel.masterName)}/${parsed.db}${query === "" ? "" : `?${query}`}`;
}

function readCredentials(userinfo: string, expected: (reason: string) => Error): { username: string | undefined; password: string | undefined } {
  const colon = userinfo.indexOf(":");
  const username = decode(colon === -1 ? userinfo : userinfo.slice(0, colon), "the user name", expected);
  const password = colon === -1 ? "" : decode(userinfo.slice(colon + 1), "the password", expected);
  return { username: emptyToUndefined(username), password: emptyToUndefined(password) };
}

function readSentinelAddress(text: string, which: string, expected: (reason: string) => Error): SentinelAddress {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^[\]:/?#@\s]+))(?::([^:]*))?$/.exec(text);
  if (text === "" || match === null) {
    throw expected(`${which} has no host, or one that is not a name, an IPv4 address or a bracketed IPv6 address`);
  }
  const portText = match[3];
  if (portText === undefined || portText === "") {
    return { host: (match[1] ?? match[2]) as string, port: DEFAULT_SENTINEL_PORT };
  }
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : 0;
  if (port < 1 || port > 65535) {
    throw expected(`${which} has a port that is not a number from 1 to 65535`);
  }
  return { host: (match[1] ?? match[2]) as string, port };
}

function decode(text: string, what: string, expected: (reason: string) => Error): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw expected(`${what} is not valid percent-encoding`);
  }
}

/**
 * `name=value&…`, each part percent-decoded as the URL's user and password are: a `+` stays a `+`
 * (URLSearchParams would make it a space, and a password would be wrong).
 */
function readQuery(text: string, expected: (reason: string) => Error): Map<string, string> {
  const query = new Map<string, string>();
  for (const part of text === "" ? [] : text.split("&")) {
    const equals = part.indexOf("=");
    const name = decode(equals === -1 ? part : part.slice(0, equals), "a query parameter's name", expected);
    query.set(name, decode(equals === -1 ? "" : part.slice(equals + 1), `the value of ${name}`, expected));
  }
  return query;
}

function emptyToUndefined(value: string | null | undefined): string | undefined {
  return value === null || value === "" ? undefined : value;
}
