import { Metadata, type StatusObject, type status } from "@grpc/grpc-js";
import { RejectedRequest } from "./service-definition.js";

/**
 * The status that answers a request refused by its deserializer (see RejectedRequest: not valid
 * protobuf, INVALID_ARGUMENT; too large, request-limits.ts), before it reaches a handler; undefined
 * for any other message. The call observer (call-observer.ts) sends it, so that it is counted and
 * logged like any other status.
 */
export function malformedRequestStatus(message: unknown): StatusObject | undefined {
  return message instanceof RejectedRequest ? { code: message.code as status, details: message.description, metadata: new Metadata() } : undefined;
}
