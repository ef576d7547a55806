import { ReplyError } from "ioredis";
import { Code, RegistryError } from "../errors/index.js";

/** Prefixes of the errors our Lua scripts raise, and the status each becomes. */
const SCRIPT_ERRORS: ReadonlyMap<string, Code> = new Map([
  ["CMR_NOT_FOUND", Code.NOT_FOUND],
  ["CMR_DATA_LOST", Code.RESOURCE_EXHAUSTED],
  ["CMR_EXHAUSTED", Code.RESOURCE_EXHAUSTED],
  ["CMR_CLAIM_LOST", Code.ABORTED],
  ["CMR_DELETING", Code.UNAVAILABLE],
]);

/** Replies of a Redis that is there but cannot serve now (starting, failing over, read-only replica). */
const UNAVAILABLE_REPLIES = ["LOADING", "MASTERDOWN", "READONLY", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "NOREPLICAS", "MOVED", "ASK"];

/** A script on a Cluster node whose slot is being migrated, after some of its keys left: try again. */
const NOT_LOCAL_ANY_MORE = /Script attempted to access a non local key/;
/** A Redis at its `maxclients` refuses a new connection's first command: there, but full for now. */
const NO_ROOM_FOR_CLIENTS = /^ERR max number of clients reached/;

/**
 * Maps whatever a Redis call threw to the registry's error: no connection, a timeout or a Redis
 * that cannot serve → UNAVAILABLE "Redis at host:port is unreachable: <cause>"; out of memory →
 * RESOURCE_EXHAUSTED; our scripts' errors → their status; anything else → INTERNAL.
 */
export function toRegistryError(address: string, error: unknown): RegistryError {
  if (error instanceof RegistryError) {
    return error;
  }
  const message = error instanceof Error ? error.message : String(error);
  if (isReplyError(error)) {
    const word = message.split(" ", 1)[0] ?? "";
    const code = SCRIPT_ERRORS.get(word);
    if (code !== undefined) {
      return new RegistryError(code, message.slice(word.length + 1), { cause: error });
    }
    if (word === "OOM") {
      return new RegistryError(
        Code.RESOURCE_EXHAUSTED,
        `Redis at ${address} is out of memory (maxmemory reached with nothing evictable): ${message}`,
        { cause: error },
      );
    }
    if (UNAVAILABLE_REPLIES.includes(word) || NOT_LOCAL_ANY_MORE.test(message) || NO_ROOM_FOR_CLIENTS.test(message)) {
      return unavailable(address, message, error);
    }
    return new RegistryError(Code.INTERNAL, `Redis at ${address} refused a command: ${message}`, { cause: error });
  }
  return unavailable(address, message, error);
}

/**
 * Whether `error` is the putModel script's refusal of a model whose deletion is removing its archive
 * files (CMR_DELETING): the script wrote nothing.
 */
export function isRefusedWhileDeleting(error: unknown): boolean {
  return error instanceof RegistryError && isReplyError(error.cause) && error.cause.message.startsWith("CMR_DELETING ");
}

export function unavailable(address: string, cause: string, error?: unknown): RegistryError {
  return new RegistryError(Code.UNAVAILABLE, `Redis at ${address} is unreachable: ${cause}`, { cause: error });
}

function isReplyError(error: unknown): error is Error {
  // A script's error reaches ioredis as a ReplyError whose message starts with the error's first word.
  return error instanceof (ReplyError as new () => Error);
}
