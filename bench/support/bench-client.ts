/** The e2e client (test/support/registry-client.ts) set up for load: one connection each, verified streaming reads. */
import { createHash } from "node:crypto";
import type * as grpc from "@grpc/grpc-js";
import { RegistryClient } from "../../test/support/registry-client.js";
import { sharedNow } from "./clock.js";

export { RegistryClient };
export type { WireVersionInfo } from "../../test/support/registry-client.js";

export const NOT_FOUND = 5;

export interface BenchClientOptions {
  /** HTTP/2 receive window (per stream and per connection); 0 keeps grpc-js's default of 64 KiB. */
  readonly windowBytes?: number;
}

/**
 * A client with its own HTTP/2 connection: grpc-js shares one connection
 * between clients of the same target and options unless told otherwise, and
 * N actors are N connections, not N streams on one.
 */
export function createBenchClient(address: string, options: BenchClientOptions = {}): RegistryClient {
  const channelOptions: grpc.ClientOptions = { "grpc.use_local_subchannel_pool": 1 };
  if (options.windowBytes !== undefined && options.windowBytes > 0) {
    channelOptions["grpc-node.flow_control_window"] = options.windowBytes;
  }
  return new RegistryClient(address, channelOptions);
}

export interface FetchedData {
  readonly bytes: number;
  /** Shared-clock time at which the last data chunk arrived. */
  readonly lastByteAt: number;
  /** SHA-256 of the received bytes, standard padded base64 (like data_hash); "" when they were compared instead. */
  readonly hashBase64: string;
  /** When the read compared the bytes with the expected ones (raw reader, ExpectedBytes): whether they were those. */
  readonly matchedExpected?: boolean;
}

type DataStream = grpc.ClientReadableStream<{ data_chunk: Buffer }>;

/**
 * RetrieveVersionData, hashing each chunk as it arrives (no concatenation).
 * `onChunk` sees each chunk's length and arrival time.
 */
export function fetchVersionData(
  client: RegistryClient,
  modelId: string,
  versionNumber: number,
  onChunk?: (length: number, at: number) => void,
  deadline?: number,
): Promise<FetchedData> {
  return new Promise((resolve, reject) => {
    const method = client.raw.RetrieveVersionData as (request: object, options?: grpc.CallOptions) => DataStream;
    const call = method.call(
      client.raw,
      { model_id: modelId, version_number: versionNumber },
      deadline === undefined ? {} : { deadline: new Date(deadline) },
    );
    const hash = createHash("sha256");
    let bytes = 0;
    let lastByteAt = sharedNow();
    call.on("data", (message: { data_chunk: Buffer }) => {
      const chunk = message.data_chunk;
      lastByteAt = sharedNow();
      hash.update(chunk);
      bytes += chunk.byteLength;
      onChunk?.(chunk.byteLength, lastByteAt);
    });
    call.on("error", reject);
    call.on("end", () => resolve({ bytes, lastByteAt, hashBase64: hash.digest("base64") }));
  });
}

export function grpcCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
