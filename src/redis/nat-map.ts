/*
 * COGMENT_MODEL_REGISTRY_REDIS_NAT_MAP (#17): where to reach a Redis node that a Redis Cluster (CLUSTER
 * SLOTS, MOVED, ASK) or the Sentinels announce at an address this instance cannot reach: a cluster in
 * Docker or Kubernetes announces its containers' addresses, Sentinels the primary's internal one.
 * ioredis's `natMap` does the same for its own connections; the chunk connections (ChunkChannel)
 * apply the same map to the nodes they open sockets to.
 */
import type { NatMap as IoredisNatMap } from "ioredis";

/** A node's address as a socket takes it (an IPv6 address without brackets). */
export interface NodeAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * Announced address → reachable address. Keys are written as ioredis and Redis write a node
 * (`host:port`, an IPv6 address without brackets: `::1:7000`), so that a MOVED's target, a CLUSTER
 * SLOTS entry and a Sentinel's reply are looked up as they come.
 */
export type NatMap = ReadonlyMap<string, NodeAddress>;

export const NO_NAT_MAP: NatMap = new Map();

export const NAT_MAP_FORM =
  "comma-separated pairs announced=reachable, each side host:port (IPv6 in brackets), e.g. 10.0.1.5:6379=redis.example.com:30001,10.0.1.6:6379=redis.example.com:30002";

/** Thrown by parseNatMap; the message says which pair is wrong and why (the form is added by the caller). */
export class NatMapError extends Error {
  override readonly name = "NatMapError";
}

/** A host name, an IPv4 address, or a bracketed IPv6 address, then `:port`. */
const ADDRESS = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+)):([0-9]{1,5})$/;

/** Parses `announced=reachable[,announced=reachable...]`; the empty string is the empty map. */
export function parseNatMap(text: string): NatMap {
  const map = new Map<string, NodeAddress>();
  if (text.trim() === "") {
    return map;
  }
  const pairs = text.split(",");
  for (const [index, pairText] of pairs.entries()) {
    const which = `pair ${index + 1} of ${pairs.length}`;
    const sides = pairText.split("=");
    if (sides.length !== 2) {
      throw new NatMapError(`${which} ${JSON.stringify(pairText.trim())} is not announced=reachable`);
    }
    const [announced, reachable] = sides.map((side) => readAddress(side.trim(), which)) as [NodeAddress, NodeAddress];
    const key = nodeKey(announced);
    if (map.has(key)) {
      throw new NatMapError(`${which} maps ${formatNode(announced)} a second time`);
    }
    map.set(key, reachable);
  }
  return map;
}

function readAddress(text: string, which: string): NodeAddress {
  const match = ADDRESS.exec(text);
  if (match === null) {
    throw new NatMapError(`${which}: ${JSON.stringify(text)} is not host:port (a name, an IPv4 address or a bracketed IPv6 address, and a port)`);
  }
  const port = Number(match[3]);
  if (port < 1 || port > 65535) {
    throw new NatMapError(`${which}: ${JSON.stringify(text)} has a port that is not a number from 1 to 65535`);
  }
  return { host: (match[1] ?? match[2]) as string, port };
}

/** `host:port` as ioredis keys a node (and Redis writes one in MOVED and ASK): IPv6 without brackets. */
export function nodeKey({ host, port }: NodeAddress): string {
  return `${host}:${port}`;
}

/** `host:port` as a person reads it (IPv6 in brackets). */
export function formatNode({ host, port }: NodeAddress): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Where to reach the node announced as `node` (`host:port`, as ioredis keys it): its mapping, or itself. */
export function reachableNode(natMap: NatMap, node: string): string {
  const mapped = natMap.get(node);
  return mapped === undefined ? node : nodeKey(mapped);
}

/**
 * ioredis's `natMap` option (Cluster and Sentinel), or undefined for an empty map. A function rather
 * than the object form: ioredis's Sentinel connector passes the object form's entry itself to
 * `tls.connect` after copying the TLS options into it, which would change the map.
 */
export function ioredisNatMap(natMap: NatMap): IoredisNatMap | undefined {
  if (natMap.size === 0) {
    return undefined;
  }
  return (key: string) => {
    const mapped = natMap.get(key);
    return mapped === undefined ? null : { host: mapped.host, port: mapped.port };
  };
}

/** The map as the variable writes it (IPv6 keys as ioredis keys them), for the start-up log. */
export function describeNatMap(natMap: NatMap): string {
  return [...natMap].map(([announced, reachable]) => `${announced}=${formatNode(reachable)}`).join(",");
}
