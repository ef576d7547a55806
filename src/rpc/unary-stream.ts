/*
 * A unary call served from its HTTP/2 stream, below grpc-js's call machinery (fast-path.ts).
 *
 * The polling calls (RetrieveVersionInfos([-1]) from every actor, RetrieveModels) and the model
 * calls are small: on them grpc-js's per-call objects (metadata, an intercepting call, a writable
 * stream, closures per event) cost more than the registry's answer. Here the request is read as
 * grpc-js's handleUnary (server.js, 1.14) reads it, and answered as the interceptor and the
 * handler answer it there: one request message, then the end of the request stream, then the
 * method's answer (the same function the grpc-js handler calls: model-registry-service.ts); a
 * second message, or an end without a whole one, INVALID_ARGUMENT as the call observer words it;
 * the reply, status, deadline and observation as diverted-call.ts sends them.
 * test/e2e/unary-stream.test.ts compares both paths byte for byte.
 */
import type { ServerHttp2Stream } from "node:http2";
import { Code } from "../errors/index.js";
import { type CallObserver, ENDED_BEFORE_REQUEST, noRequestMessageDetails, secondRequestMessageDetails } from "./call-observer.js";
import { DivertedCall } from "./diverted-call.js";
import type { ServeDiverted } from "./fast-path.js";
import { toServiceError } from "./to-service-error.js";

/** A unary method as served below grpc-js. */
export interface UnaryRoute {
  /** "/package.Service/Method" */
  readonly path: string;
  /** The method's request deserializer, as registered with grpc-js. */
  readonly deserialize: (bytes: Buffer) => unknown;
  /** The reply to a request (what `deserialize` gave), as one whole gRPC frame; a rejection is the call's status. */
  readonly answer: (request: unknown) => Promise<Buffer>;
}

export interface UnaryStreamsOptions {
  /** grpc.max_receive_message_length, as the grpc-js server has it. */
  readonly maxReceiveMessageBytes: number;
  readonly observer: CallObserver;
}

/** Serves the route's calls taken below grpc-js. */
export function serveUnary(route: UnaryRoute, options: UnaryStreamsOptions): ServeDiverted {
  return (stream, timeout) => new UnaryStream(stream, route, options, timeout).start();
}

class UnaryStream extends DivertedCall {
  readonly #route: UnaryRoute;
  #request: unknown = undefined;
  #hasRequest = false;

  constructor(stream: ServerHttp2Stream, route: UnaryRoute, options: UnaryStreamsOptions, timeout: string | undefined) {
    super(stream, options.observer.observe(route.path, false, false), timeout, { maxReceiveMessageBytes: options.maxReceiveMessageBytes, deserialize: route.deserialize });
    this.#route = route;
  }

  start(): void {
    const take = (message: unknown): void => {
      if (this.#hasRequest) {
        this.sendStatus(Code.INVALID_ARGUMENT, secondRequestMessageDetails(this.#route.path));
        return;
      }
      this.#request = message;
      this.#hasRequest = true;
    };
    this.stream.on("end", () => this.#end());
    this.stream.on("data", (data: Buffer) => {
      if (!this.isDone()) {
        this.receive(data, take);
      }
    });
  }

  #end(): void {
    if (this.isDone()) {
      return;
    }
    if (!this.#hasRequest) {
      // The client's answer is INVALID_ARGUMENT; the log counts the call as the client's cancel, as
      // the call observer does on grpc-js's path (a cancelling client may end its side first).
      this.observed.closedWithoutStatus(this.deadline, ENDED_BEFORE_REQUEST);
      this.sendStatus(Code.INVALID_ARGUMENT, noRequestMessageDetails(this.#route.path));
      return;
    }
    const request = this.#request;
    this.#request = undefined;
    this.#route.answer(request).then(
      (reply) => this.sendReply(reply),
      (reason: unknown) => {
        const { code, details } = toServiceError(reason);
        this.sendStatus(code, details);
      },
    );
  }

  protected ended(): void {
    this.#request = undefined;
  }
}
