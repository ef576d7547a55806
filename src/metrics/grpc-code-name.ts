import { Code } from "../errors/index.js";

const NAMES: readonly string[] = (() => {
  const names: string[] = [];
  for (const [name, value] of Object.entries(Code)) {
    names[value] = name;
  }
  return names;
})();

/** Number of gRPC status codes (0 to 16). */
export const GRPC_CODE_COUNT = NAMES.length;

/** A code outside 0..16 is not a gRPC status: it is reported as UNKNOWN. */
export function normalizeGrpcCode(code: number): Code {
  return Number.isInteger(code) && code >= 0 && code < GRPC_CODE_COUNT ? (code as Code) : Code.UNKNOWN;
}

/** The UPPER_SNAKE name of a gRPC status code (OK, NOT_FOUND, ...), as grpc_code labels and logs spell it. */
export function grpcCodeName(code: number): string {
  return NAMES[normalizeGrpcCode(code)] as string;
}
