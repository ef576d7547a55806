import { Metadata, type StatusObject, status } from "@grpc/grpc-js";
import { MalformedRequest } from "./service-definition.js";

/**
 * The status that answers a request that did not decode (see MalformedRequest): INVALID_ARGUMENT,
 * before it reaches a handler; undefined for any other message. The call observer
 * (call-observer.ts) sends it, so that it is counted and logged like any other status.
 */
export function malformedRequestStatus(message: unknown): StatusObject | undefined {
  return message instanceof MalformedRequest
    ? { code: status.INVALID_ARGUMENT, details: message.description, metadata: new Metadata() }
    : undefined;
}
