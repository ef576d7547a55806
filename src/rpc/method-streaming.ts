import type { DescMethod } from "@bufbuild/protobuf";

/** grpc-js's two stream flags for a method, from its protobuf-es descriptor. */
export function streamingFlags(method: Pick<DescMethod, "methodKind">): { requestStream: boolean; responseStream: boolean } {
  return {
    requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
    responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
  };
}
