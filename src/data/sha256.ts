import { createHash, hash as oneShotHash } from "node:crypto";

/** Computes the SHA-256 of data given in segments, as standard padded base64 (the wire's data_hash). */
export type Sha256Base64 = (segments: readonly Uint8Array[]) => string;

export type Sha256Implementation = "node-crypto" | "hash-wasm";

export const SHA256_IMPLEMENTATIONS: readonly Sha256Implementation[] = ["node-crypto", "hash-wasm"];

const nodeCryptoSha256: Sha256Base64 = (segments) => {
  if (segments.length === 1) {
    // One segment (every version of one chunk): one call, no Hash object to build and collect.
    return oneShotHash("sha256", segments[0] as Uint8Array, "base64");
  }
  const hash = createHash("sha256");
  for (const segment of segments) {
    hash.update(segment);
  }
  return hash.digest("base64");
};

async function createHashWasmSha256(): Promise<Sha256Base64> {
  // Imported when asked for, not with this module: hash-wasm (its WebAssembly in base64, ~270 KB of
  // JavaScript) would otherwise be read, compiled and run at every start of the server, which hashes
  // with node:crypto by default (issue #15, start-up).
  const { createSHA256 } = await import("hash-wasm");
  const hasher = await createSHA256();
  return (segments) => {
    hasher.init();
    for (const segment of segments) {
      hasher.update(segment);
    }
    return Buffer.from(hasher.digest("binary")).toString("base64");
  };
}

export async function createSha256(implementation: Sha256Implementation): Promise<Sha256Base64> {
  return implementation === "hash-wasm" ? createHashWasmSha256() : nodeCryptoSha256;
}
