/** A grpc.health.v1 client built from proto/ with proto-loader (independent of the server's codegen). */
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";

const PROTO_DIR = fileURLToPath(new URL("../../../proto", import.meta.url));

interface RawHealthClient extends grpc.Client {
  Check(request: { service: string }, callback: (error: grpc.ServiceError | null, reply?: { status: string }) => void): void;
  Watch(request: { service: string }): grpc.ClientReadableStream<{ status: string }>;
}

const loaded = grpc.loadPackageDefinition(
  loadSync("grpc/health/v1/health.proto", { includeDirs: [PROTO_DIR], keepCase: true, enums: String, defaults: true }),
) as unknown as { grpc: { health: { v1: { Health: new (address: string, credentials: grpc.ChannelCredentials) => RawHealthClient } } } };

export class HealthClient {
  readonly raw: RawHealthClient;

  constructor(address: string) {
    this.raw = new loaded.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
  }

  check(service: string): Promise<string> {
    return new Promise((resolve, reject) =>
      this.raw.Check({ service }, (error, reply) => (error ? reject(error) : resolve(reply?.status ?? ""))),
    );
  }

  /**
   * Checks until the status of `service` is `wanted` or `timeoutMs` passed; returns the last status
   * seen, for the test to assert (a state that settles asynchronously, e.g. after Redis came back).
   */
  async waitFor(wanted: string, timeoutMs = 30_000, service = ""): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const seen = await this.check(service).catch((error: unknown) => `check failed: ${error instanceof Error ? error.message : String(error)}`);
      if (seen === wanted || Date.now() >= deadline) {
        return seen;
      }
      await sleep(50);
    }
  }

  watch(service: string): grpc.ClientReadableStream<{ status: string }> {
    return this.raw.Watch({ service });
  }

  close(): void {
    this.raw.close();
  }
}
