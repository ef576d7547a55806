/*
 * What every call served below grpc-js (grpc-internals.ts: divertStreams) shares: its deadline, its
 * reply and its status, each sent as grpc-js's BaseServerInterceptingCall (1.14) sends it for the same
 * event, and its observation (metrics, log line, request id: call-observer.ts). A method's own class
 * reads the request stream (create-version-stream.ts, unary-stream.ts).
 */
import { type ServerHttp2Stream, constants } from "node:http2";
import { GRPC_FRAME_PREFIX_LENGTH } from "../data/index.js";
import { Code } from "../errors/index.js";
import type { ObservedCall } from "./call-observer.js";
import { GrpcFrameReader, type IncompleteMessage } from "./grpc-frame-reader.js";
import { DEADLINE_PATTERN, DEADLINE_UNIT_MS } from "./grpc-timeout.js";
import { malformedRequestStatus } from "./reject-malformed.js";
import type { RpcStatusError } from "./to-service-error.js";

const RESPONSE_OPTIONS = { waitForTrailers: true } as const;
/** The trailers of a call that succeeded, as grpc-js's sendStatus writes them (`grpc-status` 0, `encodeURI("OK")`). */
const OK_TRAILERS = { "grpc-status": "0", "grpc-message": "OK" } as const;
const TRAILERS_ONLY_OPTIONS = { endStream: true } as const;
/** grpc-js's answers to a deserializer that throws and to a failed write (without GRPC_NODE_DEBUG_SEND_ERROR_DETAILS). */
const DESERIALIZE_FAILED = "Error deserializing request";
const WRITE_FAILED = "Internal server error";

/** A handler's error as grpc-js's serverErrorToStatus reads it: its code if an integer, its details, else its message. */
export function errorStatus(error: unknown): { readonly code: number; readonly details: string } {
  const status = (typeof error === "object" && error !== null ? error : {}) as Partial<RpcStatusError>;
  const message = typeof status.message === "string" ? status.message : "Unknown Error";
  if (typeof status.code === "number" && Number.isInteger(status.code)) {
    return { code: status.code, details: typeof status.details === "string" ? status.details : message };
  }
  return { code: Code.UNKNOWN, details: message };
}

/** How a method's request messages are read: grpc-js's receive limit and the method's deserializer. */
export interface RequestReading {
  /** grpc.max_receive_message_length, as the grpc-js server has it. */
  readonly maxReceiveMessageBytes: number;
  /** The method's request deserializer, as registered with grpc-js. */
  readonly deserialize: (bytes: Buffer) => unknown;
}

/** One call on its HTTP/2 stream, from its headers to its status. */
export abstract class DivertedCall {
  protected readonly stream: ServerHttp2Stream;
  protected readonly observed: ObservedCall;
  readonly #frames: GrpcFrameReader;
  readonly #deserialize: (bytes: Buffer) => unknown;
  #headersSent = false;
  /** The call's deadline (ms since the epoch), Infinity without one. */
  #deadline = Number.POSITIVE_INFINITY;
  #deadlineTimer: NodeJS.Timeout | undefined = undefined;
  /** The status waits for the reply's write, then goes out as trailers. */
  #trailersPending = false;
  /** A status was sent, or the stream closed first: as grpc-js's `cancelled`, nothing more happens. */
  #done = false;

  constructor(stream: ServerHttp2Stream, observed: ObservedCall, timeout: string | undefined, reading: RequestReading) {
    this.stream = stream;
    this.observed = observed;
    this.#frames = new GrpcFrameReader(reading.maxReceiveMessageBytes);
    this.#deserialize = reading.deserialize;
    if (timeout !== undefined) {
      this.#startDeadline(timeout);
    }
    // `on`, not `once`, for the events a stream emits once: no once-wrapper per call.
    stream.on("close", () => this.#closed());
  }

  /** Called once when the call is over (status sent, or the stream closed first). */
  protected abstract ended(): void;

  /** The call's deadline (ms since the epoch), Infinity without one. */
  protected get deadline(): number {
    return this.#deadline;
  }

  /** A status was sent or the stream closed; no check of the stream (see isDone). */
  protected get done(): boolean {
    return this.#done;
  }

  /** As grpc-js's handleTimeoutHeader: a bad value is INTERNAL (once the call is set up), a good one a timer. */
  #startDeadline(timeout: string): void {
    const match = DEADLINE_PATTERN.exec(timeout);
    if (match === null) {
      process.nextTick(() => this.sendStatus(Code.INTERNAL, `Invalid grpc-timeout value "${timeout}"`));
      return;
    }
    // grpc-js's arithmetic, its 32-bit truncation included (the divert listener has shortened a
    // longer grpc-timeout already: grpc-timeout.ts).
    const timeoutMs = (Number(match[1]) * (DEADLINE_UNIT_MS[match[2] as string] as number)) | 0;
    this.#deadline = Date.now() + timeoutMs;
    this.#deadlineTimer = setTimeout(() => this.sendStatus(Code.DEADLINE_EXCEEDED, "Deadline exceeded"), timeoutMs);
  }

  /** The request message the stream ended inside of, if it did. */
  protected get incompleteMessage(): IncompleteMessage | undefined {
    return this.#frames.incomplete;
  }

  /**
   * Cuts the messages `data` completes, decodes, observes and gives each to `take`, as grpc-js does:
   * a message announced over the limit is RESOURCE_EXHAUSTED (the messages of the same data before
   * it dropped), a deserializer that throws INTERNAL, a request refused by its deserializer its own
   * status (reject-malformed.ts). The compressed flag is not read: with the identity encoding,
   * grpc-js takes the bytes as they are. Stops once the call is over.
   */
  protected receive(data: Buffer, take: (message: unknown) => void): void {
    let messages: Buffer[];
    try {
      messages = this.#frames.write(data);
    } catch (error) {
      this.sendStatus(Code.RESOURCE_EXHAUSTED, (error as Error).message);
      return;
    }
    for (const frame of messages) {
      if (this.#done) {
        return;
      }
      let message: unknown;
      try {
        message = this.#deserialize(frame.subarray(GRPC_FRAME_PREFIX_LENGTH));
      } catch {
        this.sendStatus(Code.INTERNAL, DESERIALIZE_FAILED);
        return;
      }
      this.observed.received(message);
      const rejection = malformedRequestStatus(message);
      if (rejection !== undefined) {
        this.sendStatus(rejection.code, rejection.details);
        return;
      }
      take(message);
    }
  }

  /** grpc-js's checkCancelled: a stream reset by the client ends the call before its close event. */
  protected isDone(): boolean {
    if (!this.#done && (this.stream.destroyed || this.stream.closed)) {
      this.#closed();
    }
    return this.#done;
  }

  /** The reply (one whole gRPC frame), then the OK status once it is written. */
  protected sendReply(reply: Buffer): void {
    this.observed.sent(reply);
    if (this.isDone()) {
      return;
    }
    const stream = this.stream;
    try {
      stream.respond(responseHeaders(), RESPONSE_OPTIONS);
    } catch {
      // Nothing went out: the client gets a status rather than a call left without an answer.
      this.sendStatus(Code.INTERNAL, WRITE_FAILED);
      return;
    }
    this.#headersSent = true;
    stream.write(reply, (error) => {
      if (error) {
        this.sendStatus(Code.INTERNAL, WRITE_FAILED);
      } else {
        this.sendStatus(Code.OK, "OK");
      }
    });
  }

  /** As grpc-js's sendStatus: trailers after the reply, or a trailers-only response. */
  protected sendStatus(code: number, details: string): void {
    if (this.isDone()) {
      return;
    }
    if (this.#trailersPending) {
      this.#finished(); // as grpc-js: a second status once the trailers are asked for ends the call
      return;
    }
    this.observed.end(code, details);
    const stream = this.stream;
    if (this.#headersSent) {
      this.#trailersPending = true;
      const trailers = code === Code.OK && details === "OK" ? OK_TRAILERS : { "grpc-status": code, "grpc-message": encodeURI(details) };
      stream.on("wantTrailers", () => {
        stream.sendTrailers(trailers);
        this.#finished();
      });
      stream.end();
    } else {
      stream.respond({ "grpc-status": code, "grpc-message": encodeURI(details), ...RESPONSE_HEADERS_TRAILERS_ONLY }, TRAILERS_ONLY_OPTIONS);
      this.#finished();
    }
  }

  /** The status is out: later data is read and dropped. */
  #finished(): void {
    if (this.#done) {
      return;
    }
    this.#done = true;
    if (this.#deadlineTimer !== undefined) {
      clearTimeout(this.#deadlineTimer);
    }
    this.stream.resume();
    this.ended();
  }

  /** The stream closed (or was found closed) before a status was sent: the client cancelled, or its deadline passed. */
  #closed(): void {
    if (this.#done) {
      return;
    }
    this.observed.closedWithoutStatus(this.#deadline);
    this.#finished();
  }
}

/**
 * grpc-js's response headers (server-interceptors.js: defaultResponseHeaders,
 * defaultCompressionHeaders), in its order, then `date` as node:http2 adds it last: node:http2's raw
 * headers form (`[name, value, ...]`), which it takes as it is, where it copies an object's fields
 * into a new object first; the header block on the wire is the same. A new array per call:
 * node:http2 keeps the array it is given (and appends a missing `date` to it).
 */
function responseHeaders(): string[] | typeof RESPONSE_HEADERS_OBJECT {
  if (!RAW_HEADER_ARRAYS) {
    return RESPONSE_HEADERS_OBJECT;
  }
  return [...RESPONSE_HEADER_PAIRS, constants.HTTP2_HEADER_DATE, httpDate()];
}

/** The same headers as an object, for a Node.js whose `respond()` takes no array; it adds `date` last. */
const RESPONSE_HEADERS_OBJECT = {
  [constants.HTTP2_HEADER_STATUS]: constants.HTTP_STATUS_OK,
  [constants.HTTP2_HEADER_CONTENT_TYPE]: "application/grpc+proto",
  "grpc-accept-encoding": "identity,deflate,gzip",
  "grpc-encoding": "identity",
} as const;

/** RESPONSE_HEADERS_OBJECT as raw `[name, value, ...]` pairs, in its order. */
const RESPONSE_HEADER_PAIRS: readonly string[] = Object.entries(RESPONSE_HEADERS_OBJECT).flatMap(([name, value]) => [name, String(value)]);

/**
 * Whether this Node.js's `Http2Stream.respond()` takes raw `[name, value, ...]` headers: from 24.7.0
 * (nodejs/node#59455); before, it throws ERR_INVALID_ARG_TYPE. `engines` allows any Node.js 24.
 */
export function takesRawHeaderArrays(nodeVersion: string): boolean {
  const [major = 0, minor = 0] = nodeVersion.split(".").map(Number);
  return major > 24 || (major === 24 && minor >= 7);
}

const RAW_HEADER_ARRAYS = takesRawHeaderArrays(process.versions.node);

let dateSecond = -1;
let dateText = "";

/** The `date` header's value, as node:http2 makes it (`toUTCString()`, kept for the second). */
function httpDate(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(second * 1000).toUTCString();
  }
  return dateText;
}

/** What a trailers-only response carries after the status: grpc-js's defaultResponseHeaders. */
const RESPONSE_HEADERS_TRAILERS_ONLY = {
  [constants.HTTP2_HEADER_STATUS]: constants.HTTP_STATUS_OK,
  [constants.HTTP2_HEADER_CONTENT_TYPE]: "application/grpc+proto",
} as const;
