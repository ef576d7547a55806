#!/usr/bin/env node
/**
 * Container HEALTHCHECK: asks the server's grpc.health.v1 service on
 * 127.0.0.1:$COGMENT_MODEL_REGISTRY_PORT whether it is SERVING; exit 0 if so, 1 if not.
 */
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath } from "grpc-health-check";

interface HealthClient extends grpc.Client {
  Check(
    request: { service: string },
    options: grpc.CallOptions,
    callback: (error: grpc.ServiceError | null, reply?: { status: string }) => void,
  ): void;
}

const port = process.env.COGMENT_MODEL_REGISTRY_PORT?.trim() || "9000";
const loaded = grpc.loadPackageDefinition(loadSync(protoPath, { keepCase: true, enums: String })) as unknown as {
  grpc: { health: { v1: { Health: new (address: string, credentials: grpc.ChannelCredentials) => HealthClient } } };
};
const client = new loaded.grpc.health.v1.Health(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
client.Check({ service: "" }, { deadline: Date.now() + 3000 }, (error, reply) => {
  client.close();
  if (error) {
    process.stderr.write(`unhealthy: ${error.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`${reply?.status ?? "UNKNOWN"}\n`);
  process.exit(reply?.status === "SERVING" ? 0 : 1);
});
