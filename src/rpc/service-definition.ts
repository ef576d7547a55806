import { type DescMessage, type DescMethod, type DescService, type MessageShape, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import type {
  MethodDefinition,
  ServiceDefinition,
  handleClientStreamingCall,
  handleServerStreamingCall,
  handleUnaryCall,
  handleBidiStreamingCall,
} from "@grpc/grpc-js";
import { invalidUtf8Field } from "./invalid-utf8-field.js";
import { streamingFlags } from "./method-streaming.js";
import { frameSerializer } from "./pre-framed-messages.js";
import { Code } from "../errors/code.js";

/** grpc-js wants a Buffer from serializers (a plain Uint8Array crashes on `.copy`); this is a view, not a copy. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

type Handler<Kind, Req, Res> = Kind extends "unary"
  ? handleUnaryCall<Req, Res>
  : Kind extends "server_streaming"
    ? handleServerStreamingCall<Req, Res>
    : Kind extends "client_streaming"
      ? handleClientStreamingCall<Req, Res>
      : handleBidiStreamingCall<Req, Res>;

/** Methods whose responses are given as whole gRPC frames (sent as they are, see pre-framed-messages.ts). */
export type PreFramed<Methods extends GenServiceMethods> = { readonly [K in keyof Methods]?: true };

/**
 * A grpc-js implementation typed from the protobuf-es service descriptor:
 * the compiler says which methods exist and what each receives and returns.
 * Methods listed in `Framed` write gRPC frames (Buffers) instead of messages.
 */
export type ServiceImplementation<Methods extends GenServiceMethods, Framed extends PreFramed<Methods> = object> = {
  [K in keyof Methods]: Handler<
    Methods[K]["methodKind"],
    MessageShape<Methods[K]["input"]>,
    K extends keyof Framed ? Buffer : MessageShape<Methods[K]["output"]>
  >;
};

/**
 * What a request message refused by its method's deserializer becomes (too large to decode, not
 * valid protobuf): reject-malformed.ts answers it with this status before it reaches a handler.
 */
export class RejectedRequest {
  constructor(
    /** A gRPC status code. */
    readonly code: number,
    readonly description: string,
  ) {}
}

/**
 * What a request that is not valid protobuf decodes to. grpc-js answers a throwing deserializer
 * with INTERNAL "Error deserializing request"; the client sent garbage, so reject-malformed.ts
 * answers INVALID_ARGUMENT instead, naming the message type.
 */
export class MalformedRequest extends RejectedRequest {
  constructor(
    readonly typeName: string,
    readonly reason: string,
  ) {
    super(Code.INVALID_ARGUMENT, `the request is not a valid ${typeName} message: ${reason}`);
  }
}

function decodeRequest(input: DescMessage, bytes: Buffer): unknown {
  try {
    return fromBinary(input, bytes);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    // protobuf-es names no field for a string that is not UTF-8: find it.
    const field = /utf-8/i.test(reason) ? invalidUtf8Field(input, bytes) : undefined;
    return new MalformedRequest(input.typeName, field === undefined ? reason : `${field} is not valid UTF-8; expected UTF-8 text`);
  }
}

/**
 * Runs on each request message before protobuf-es: reads the common shape of a method's request
 * without it, giving exactly what protobuf-es's fromBinary would, or refuses the message before any
 * decoding (a RejectedRequest, e.g. too large for its method: request-limits.ts); undefined for
 * anything else, which protobuf-es then decodes.
 */
export type FastRequestDecoder = (bytes: Buffer) => unknown;

function methodDefinition(method: DescMethod, preFramed: boolean, fastDecoder: FastRequestDecoder | undefined): MethodDefinition<unknown, unknown> {
  const input: DescMessage = method.input;
  const output: DescMessage = method.output;
  return {
    path: `/${method.parent.typeName}/${method.name}`,
    originalName: method.localName,
    ...streamingFlags(method),
    requestSerialize: (message) => asBuffer(toBinary(input, message as MessageShape<DescMessage>)),
    requestDeserialize:
      fastDecoder === undefined ? (bytes) => decodeRequest(input, bytes) : (bytes) => fastDecoder(bytes) ?? decodeRequest(input, bytes),
    responseSerialize: preFramed
      ? (frameSerializer() as (value: unknown) => Buffer)
      : (message) => asBuffer(toBinary(output, message as MessageShape<DescMessage>)),
    responseDeserialize: (bytes) => fromBinary(output, bytes),
  };
}

/**
 * Builds the grpc-js ServiceDefinition of a protobuf-es service (protobuf-es v2 has no grpc-js generator).
 * `fastDecoders` (by method local name) are tried on each request message before protobuf-es.
 */
export function createServiceDefinition(
  service: DescService,
  preFramed: Readonly<Record<string, true>> = {},
  fastDecoders: Readonly<Record<string, FastRequestDecoder>> = {},
): ServiceDefinition {
  const definition: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    definition[method.localName] = methodDefinition(method, preFramed[method.localName] === true, fastDecoders[method.localName]);
  }
  return definition;
}
