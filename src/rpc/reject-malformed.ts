import { Metadata, type ServerInterceptor, ServerInterceptingCall, status } from "@grpc/grpc-js";
import { MalformedRequest } from "./service-definition.js";

/**
 * Answers a request that did not decode (see MalformedRequest) with INVALID_ARGUMENT, before it
 * reaches a handler. Put it after the call observer in the server's interceptors, so that the
 * status passes through the observer and is counted and logged like any other.
 */
export function createMalformedRequestRejecter(): ServerInterceptor {
  return (_descriptor, next) => {
    const call: ServerInterceptingCall = new ServerInterceptingCall(next, {
      start: (proceed) =>
        proceed({
          onReceiveMessage: (message: unknown, pass: (message: unknown) => void) => {
            if (message instanceof MalformedRequest) {
              call.sendStatus({ code: status.INVALID_ARGUMENT, details: message.description, metadata: new Metadata() });
              return;
            }
            pass(message);
          },
        }),
    });
    return call;
  };
}
