/**
 * The request bodies of the small-call scenarios, as whole gRPC messages (5-byte frame
 * header + protobuf), encoded by hand like http2-data-reader.ts: the load generators
 * do not share the server's generated code.
 */
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";

/** The small calls the bench makes; "create-version" is a whole CreateVersion stream. */
export type SmallCall = "infos" | "create-version" | "create-model";

export const SMALL_CALL_PATHS: Readonly<Record<SmallCall, string>> = {
  infos: "/cogmentAPI.ModelRegistrySP/RetrieveVersionInfos",
  "create-version": "/cogmentAPI.ModelRegistrySP/CreateVersion",
  "create-model": "/cogmentAPI.ModelRegistrySP/CreateOrUpdateModel",
};

export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(5 + message.byteLength);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(message.byteLength, 1);
  frame.set(message, 5);
  return frame;
}

/** RetrieveVersionInfos(model_id, version_numbers: [-1]): the latest version's info. */
export function latestInfoRequest(modelId: string): Buffer {
  return grpcFrame(new BinaryWriter().tag(1, WireType.LengthDelimited).string(modelId).tag(2, WireType.Varint).int32(-1).finish());
}

/** A transient version of `data` in two messages: the header (with data_size) and one body chunk. */
export function createVersionRequest(modelId: string, data: Uint8Array): Buffer {
  const versionInfo = new BinaryWriter()
    .tag(1, WireType.LengthDelimited)
    .string(modelId)
    .tag(6, WireType.Bit64)
    .fixed64(data.byteLength)
    .finish();
  const header = new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(versionInfo).finish());
  const body = new BinaryWriter().tag(2, WireType.LengthDelimited).bytes(new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(data).finish());
  return Buffer.concat([grpcFrame(header.finish()), grpcFrame(body.finish())]);
}

/** CreateOrUpdateModel(model_info: {model_id, user_data: {step}}). */
export function createModelRequest(modelId: string, step: number): Buffer {
  const entry = new BinaryWriter().tag(1, WireType.LengthDelimited).string("step").tag(2, WireType.LengthDelimited).string(String(step)).finish();
  const modelInfo = new BinaryWriter().tag(1, WireType.LengthDelimited).string(modelId).tag(2, WireType.LengthDelimited).bytes(entry).finish();
  return grpcFrame(new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(modelInfo).finish());
}
