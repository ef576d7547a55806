/**
 * The floor of the stack: a bare grpc-js server with the registry's proto and the same
 * request decoding and reply encoding (createServiceDefinition), answering every call
 * with a fixed reply and doing nothing else: no registry, no validation, no metrics,
 * no logs. A CreateVersion stream is read to its end first. Our server's CPU per call
 * divided by this one's, measured with the same clients in the same run, is the
 * figure the issue #15 goals use.
 *
 * Started like src/main.js (COGMENT_MODEL_REGISTRY_PORT, 0 by default), it prints
 * the same "model registry serving" JSON line with the bound port.
 */
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { VersionInfoSchema } from "../../src/gen/cogment/api/common_pb.js";
import {
  CreateOrUpdateModelReplySchema,
  CreateVersionReplySchema,
  ModelRegistrySP,
  ModelVersionInfoSchema,
  RetrieveVersionInfosReplySchema,
} from "../../src/gen/cogment/api/model_registry_pb.js";
import { createServiceDefinition } from "../../src/rpc/service-definition.js";

/** What a 1 KiB transient version's info looks like on the wire (sizes as in the registry's replies). */
const VERSION_INFO = create(ModelVersionInfoSchema, {
  modelId: "bench-model",
  versionNumber: 1,
  creationTimestamp: 1_764_000_000_000_000_000n,
  archived: false,
  dataHash: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
  dataSize: 1024n,
  userData: {},
});
const REPLIES = {
  infos: create(RetrieveVersionInfosReplySchema, { versionInfos: [VERSION_INFO], nextVersionHandle: "2" }),
  createVersion: create(CreateVersionReplySchema, { versionInfo: VERSION_INFO }),
  createModel: create(CreateOrUpdateModelReplySchema, {}),
  version: create(VersionInfoSchema, { versions: [{ name: "model_registry", version: "floor" }] }),
};

type Callback = (error: grpc.ServiceError | null, reply?: unknown) => void;

const implementation: grpc.UntypedServiceImplementation = {
  retrieveVersionInfos: (_call: unknown, callback: Callback) => callback(null, REPLIES.infos),
  createOrUpdateModel: (_call: unknown, callback: Callback) => callback(null, REPLIES.createModel),
  version: (_call: unknown, callback: Callback) => callback(null, REPLIES.version),
  createVersion: (call: grpc.ServerReadableStream<unknown, unknown>, callback: Callback) => {
    call.on("data", () => {});
    call.on("error", () => {});
    call.on("end", () => callback(null, REPLIES.createVersion));
  },
};

function main(): void {
  const port = Number(process.env.COGMENT_MODEL_REGISTRY_PORT ?? "0");
  const server = new grpc.Server({ "grpc.max_receive_message_length": 128 * 1024 * 1024 });
  server.addService(createServiceDefinition(ModelRegistrySP), implementation);
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error, bound) => {
    if (error !== null) {
      process.stderr.write(`floor-server: ${error.message}\n`);
      process.exit(1);
    }
    process.stdout.write(`${JSON.stringify({ level: 30, msg: "model registry serving", port: bound })}\n`);
  });
  const stop = (): void => {
    setTimeout(() => server.forceShutdown(), 1000).unref();
    server.tryShutdown(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main();
