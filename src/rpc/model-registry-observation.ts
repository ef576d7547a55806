import type { MessageShape } from "@bufbuild/protobuf";
import { GRPC_FRAME_PREFIX_LENGTH } from "../data/index.js";
import { ModelRegistrySP } from "../gen/cogment/api/model_registry_pb.js";
import type { MethodObservation, ObservedMethod } from "./call-observer.js";
import { streamingFlags } from "./method-streaming.js";

type Methods = (typeof ModelRegistrySP)["method"];

/** These methods send whole gRPC frames (see pre-framed-messages.ts, encoded-infos.ts). */
type FramedMethod = "retrieveVersionData" | "retrieveModels" | "retrieveVersionInfos" | "versionUpdate";
type Sent<K extends keyof Methods> = K extends FramedMethod ? Buffer : MessageShape<Methods[K]["output"]>;

type Observations = {
  readonly [K in keyof Methods]: MethodObservation<MessageShape<Methods[K]["input"]>, Sent<K>>;
};

/**
 * Data bytes of a framed `RetrieveVersionDataReplyChunk`: the 5-byte gRPC prefix, field 1
 * (tag 0x0a), then the varint length of the bytes that follow. An empty chunk is the empty message.
 */
export function framedChunkDataBytes(frame: Uint8Array): number {
  const lengthStart = GRPC_FRAME_PREFIX_LENGTH + 1;
  let length = 0;
  let scale = 1;
  for (let i = lengthStart; i < frame.length && i < lengthStart + 10; i++) {
    const byte = frame[i] as number;
    length += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      return length;
    }
    scale *= 128;
  }
  return 0;
}

/** What the call observer reads in each method's messages: the model named, the version data bytes moved. */
const OBSERVATIONS: Observations = {
  createOrUpdateModel: { modelId: (request) => request.modelInfo?.modelId },
  deleteModel: { modelId: (request) => request.modelId },
  // Only when it names a single model.
  retrieveModels: { modelId: (request) => (request.modelIds.length === 1 ? request.modelIds[0] : undefined) },
  createVersion: {
    // The first message is the header; the observer only asks the first one.
    modelId: (chunk) => (chunk.msg.case === "header" ? chunk.msg.value.versionInfo?.modelId : undefined),
    receivedDataBytes: (chunk) => (chunk.msg.case === "body" ? chunk.msg.value.dataChunk.byteLength : 0),
  },
  retrieveVersionInfos: { modelId: (request) => request.modelId },
  retrieveVersionData: { modelId: (request) => request.modelId, sentDataBytes: framedChunkDataBytes },
  versionUpdate: { modelId: (request) => request.modelId },
  version: {},
  status: {},
};

/** The methods of cogmentAPI.ModelRegistrySP as the call observer sees them. */
export const modelRegistryObservedMethods: readonly ObservedMethod[] = ModelRegistrySP.methods.map((method) => ({
  path: `/${ModelRegistrySP.typeName}/${method.name}`,
  ...streamingFlags(method),
  observation: OBSERVATIONS[method.localName as keyof Methods],
}));
