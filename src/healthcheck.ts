#!/usr/bin/env node
/**
 * Container HEALTHCHECK: asks the server's grpc.health.v1 service on
 * 127.0.0.1:$COGMENT_MODEL_REGISTRY_PORT whether it is SERVING; exit 0 if so, 1 if not.
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "./gen/grpc/health/v1/health_pb.js";

const port = process.env.COGMENT_MODEL_REGISTRY_PORT?.trim() || "9000";
const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
client.makeUnaryRequest(
  "/grpc.health.v1.Health/Check",
  (request: { service: string }) => Buffer.from(toBinary(HealthCheckRequestSchema, { $typeName: "grpc.health.v1.HealthCheckRequest", ...request })),
  (bytes: Buffer) => fromBinary(HealthCheckResponseSchema, bytes),
  { service: "" },
  { deadline: Date.now() + 3000 },
  (error, reply) => {
    client.close();
    if (error) {
      process.stderr.write(`unhealthy: ${error.message}\n`);
      process.exit(1);
    }
    const status = reply?.status ?? ServingStatus.UNKNOWN;
    process.stdout.write(`${ServingStatus[status]}\n`);
    process.exit(status === ServingStatus.SERVING ? 0 : 1);
  },
);
