import { Metadata, type status } from "@grpc/grpc-js";
import { wellFormed } from "../cut-text.js";
import { Code, RegistryError } from "../errors/index.js";

/*
 * An archive that cannot take writes, full or read-only, is one condition for a client: its request
 * was fine, the server's storage has no room for it until an operator acts. gRPC's status docs give
 * "the entire file system is out of space" as RESOURCE_EXHAUSTED; a read-only file system is storage
 * with no writable room either, so it shares the code (PERMISSION_DENIED is about the caller's
 * identity, UNAVAILABLE invites automatic retries of whole uploads). The message names the cause.
 */
const ERRNO_CODES: Readonly<Record<string, { code: Code; what: string }>> = {
  ENOSPC: { code: Code.RESOURCE_EXHAUSTED, what: "no space left on the archive device" },
  EDQUOT: { code: Code.RESOURCE_EXHAUSTED, what: "disk quota exceeded on the archive device" },
  EROFS: { code: Code.RESOURCE_EXHAUSTED, what: "the archive directory is on a read-only file system" },
  EACCES: { code: Code.PERMISSION_DENIED, what: "permission denied in the archive directory" },
  EPERM: { code: Code.PERMISSION_DENIED, what: "operation not permitted in the archive directory" },
  ENAMETOOLONG: { code: Code.INVALID_ARGUMENT, what: "model_id is too long for a file name on the archive's file system" },
};

/** Maps anything thrown by the core to a gRPC status; platform errors are translated here, at the edge. */
export function toRegistryError(reason: unknown): RegistryError {
  if (reason instanceof RegistryError) {
    return reason;
  }
  const errno = (reason as { code?: unknown } | null)?.code;
  if (typeof errno === "string") {
    const mapped = ERRNO_CODES[errno];
    if (mapped !== undefined) {
      const detail = reason instanceof Error ? reason.message : String(reason);
      return new RegistryError(mapped.code, `${mapped.what}: ${detail}`, { cause: reason });
    }
  }
  return RegistryError.from(reason);
}

/** What grpc-js accepts as an error status (a ServerErrorResponse). */
export interface RpcStatusError {
  readonly name: string;
  readonly message: string;
  readonly code: status;
  readonly details: string;
  readonly metadata: Metadata;
}

export function toServiceError(reason: unknown): RpcStatusError {
  const error = toRegistryError(reason);
  // Code mirrors the wire numbers, so it is grpc-js's status enum value for value.
  const code = error.code as number as status;
  const details = wellFormed(error.message);
  return { name: "ServiceError", message: details, code, details, metadata: new Metadata() };
}
