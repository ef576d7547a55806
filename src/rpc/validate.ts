import { MODEL_ID_RULE, modelIdProblem } from "../archive/index.js";
import { invalidArgument, resourceExhausted } from "../errors/index.js";
import { EMPTY_USER_DATA } from "../registry/index.js";

/** Model ids name directories in the archive: anything usable as one file name is accepted. */
export function validateModelId(field: string, modelId: string): string {
  const problem = modelIdProblem(modelId);
  if (problem !== undefined) {
    const characters = Array.from(modelId);
    const shown =
      characters.length > 64
        ? `${JSON.stringify(characters.slice(0, 64).join(""))}… (${Buffer.byteLength(modelId)} bytes of UTF-8)`
        : JSON.stringify(modelId);
    throw invalidArgument(`${field} ${shown} is invalid: ${problem}; expected ${MODEL_ID_RULE}`);
  }
  return modelId;
}

export const MAX_USER_DATA_BYTES = 64 * 1024;

/**
 * Copies a user_data map into a plain own-property record, bounded in total size. An empty map
 * becomes the one shared, frozen EMPTY_USER_DATA (no object per version).
 */
export function validateUserData(field: string, userData: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
  const entries = Object.entries(userData);
  if (entries.length === 0) {
    return EMPTY_USER_DATA;
  }
  let bytes = 0;
  for (const [key, value] of entries) {
    bytes += Buffer.byteLength(key) + Buffer.byteLength(value);
  }
  if (bytes > MAX_USER_DATA_BYTES) {
    throw invalidArgument(
      `${field} is too large: its keys and values add up to ${bytes} bytes, the limit is ${MAX_USER_DATA_BYTES} bytes (64 KiB)`,
    );
  }
  return Object.fromEntries(entries);
}

/** data_size arrives as a fixed64. */
export function validateDataSize(field: string, dataSize: bigint): number {
  if (dataSize > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw resourceExhausted(`${field} ${dataSize} is larger than this server can hold (at most ${Number.MAX_SAFE_INTEGER} bytes)`);
  }
  return Number(dataSize);
}

export function requireMessage<T>(field: string, value: T | undefined): T {
  if (value === undefined) {
    throw invalidArgument(`${field} is required`);
  }
  return value;
}
