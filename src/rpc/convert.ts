import { create } from "@bufbuild/protobuf";
import {
  type ModelInfo,
  ModelInfoSchema,
  type ModelVersionInfo,
  ModelVersionInfoSchema,
} from "../gen/cogment/api/model_registry_pb.js";
import type { ModelRecord, VersionRecord } from "../registry/index.js";

export function toWireModel(model: ModelRecord): ModelInfo {
  return create(ModelInfoSchema, { modelId: model.modelId, userData: { ...model.userData } });
}

export function toWireVersion(version: VersionRecord): ModelVersionInfo {
  return create(ModelVersionInfoSchema, {
    modelId: version.modelId,
    versionNumber: version.versionNumber,
    creationTimestamp: version.creationTimestamp,
    archived: version.archived,
    dataHash: version.dataHash,
    dataSize: BigInt(version.dataSize),
    userData: { ...version.userData },
  });
}
