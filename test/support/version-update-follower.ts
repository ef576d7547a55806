/** A VersionUpdate stream whose version numbers and end a test collects and waits for. */
import { setTimeout as sleep } from "node:timers/promises";
import type * as grpc from "@grpc/grpc-js";
import type { RegistryClient, WireVersionInfo } from "./registry-client.js";

export interface VersionUpdateFollower {
  /** The version numbers received, in order. */
  readonly numbers: number[];
  /** How the stream ended with an error, if it did. */
  readonly error: grpc.ServiceError | undefined;
  /** Waits until `predicate` holds; fails naming `what`, the numbers and the error after `timeoutMs`. */
  until(predicate: () => boolean, what: string, timeoutMs?: number): Promise<void>;
  cancel(): void;
}

export function followVersionUpdates(client: RegistryClient, modelId: string, defaultTimeoutMs: number): VersionUpdateFollower {
  const stream = client.versionUpdate(modelId);
  const numbers: number[] = [];
  let error: grpc.ServiceError | undefined;
  stream.on("data", (message: { version_info: WireVersionInfo }) => numbers.push(message.version_info.version_number));
  stream.on("error", (e: grpc.ServiceError) => (error = e));
  return {
    numbers,
    get error() {
      return error;
    },
    async until(predicate: () => boolean, what: string, timeoutMs = defaultTimeoutMs): Promise<void> {
      for (const deadline = Date.now() + timeoutMs; !predicate(); await sleep(10)) {
        if (Date.now() > deadline) {
          throw new Error(`timed out waiting for ${what}; received ${numbers.join(",")}, error ${error?.message}`);
        }
      }
    },
    cancel: () => stream.cancel(),
  };
}
