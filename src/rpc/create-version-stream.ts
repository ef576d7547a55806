/*
 * CreateVersion served from the HTTP/2 stream, below grpc-js's call machinery.
 *
 * grpc-js (1.14) spends more per CreateVersion call than this server's own code and the registry
 * together: a base call, an intercepting call, a duplex stream, metadata objects, a promise and a
 * copy per message (docs/performance.md, "CreateVersion, fourth round"). The common call (a plain
 * gRPC request, no compression, no deadline) is served here instead, from the node:http2 stream
 * grpc-js would have been given (grpc-internals.ts: divertStreams), with the same upload
 * (create-version-call.ts: CreateVersionUpload), the same call observation (metrics, log line,
 * request id: call-observer.ts), the same limits and the same bytes on the wire: every header,
 * trailer, status and message below is what grpc-js's BaseServerInterceptingCall sends for the
 * same event (test/e2e/create-version-stream.test.ts compares the two byte for byte), a
 * `grpc-timeout` deadline included. Any other CreateVersion call (a grpc-encoding, another content
 * type) and every other method goes to grpc-js unchanged, and so does every call once the server
 * drains.
 */
import { type IncomingHttpHeaders, type ServerHttp2Stream, constants } from "node:http2";
import { GRPC_FRAME_PREFIX_LENGTH } from "../data/index.js";
import type { CreateVersionRequestChunk } from "../gen/cogment/api/model_registry_pb.js";
import type { Registry } from "../registry/index.js";
import { Code } from "../errors/index.js";
import type { CallObserver, ObservedCall } from "./call-observer.js";
import { CreateVersionUpload, type UploadAnswer } from "./create-version-call.js";
import type { DivertedStreams } from "./grpc-internals.js";
import { cutRequestMessage } from "./cut-request-message.js";
import { GrpcFrameReader } from "./grpc-frame-reader.js";
import { DEADLINE_PATTERN, DEADLINE_UNIT_MS } from "./grpc-timeout.js";
import { malformedRequestStatus } from "./reject-malformed.js";
import type { RpcStatusError } from "./to-service-error.js";
import type { UploadLimits } from "./upload-watchdog.js";

export const CREATE_VERSION_PATH = "/cogmentAPI.ModelRegistrySP/CreateVersion";

const RESPONSE_OPTIONS = { waitForTrailers: true } as const;
/** The trailers of a call that succeeded, as grpc-js's sendStatus writes them (`grpc-status` 0, `encodeURI("OK")`). */
const OK_TRAILERS = { "grpc-status": "0", "grpc-message": "OK" } as const;
const TRAILERS_ONLY_OPTIONS = { endStream: true } as const;
/** grpc-js's answers to a deserializer that throws and to a failed write (without GRPC_NODE_DEBUG_SEND_ERROR_DETAILS). */
const DESERIALIZE_FAILED = "Error deserializing request";
const WRITE_FAILED = "Internal server error";

export interface CreateVersionStreamsOptions {
  readonly registry: Registry;
  readonly uploadLimits: UploadLimits;
  /** grpc.max_receive_message_length, as the grpc-js server has it. */
  readonly maxReceiveMessageBytes: number;
  /** The method's request deserializer, as registered with grpc-js. */
  readonly deserialize: (bytes: Buffer) => unknown;
  readonly observer: CallObserver;
}

export interface CreateVersionStreams extends DivertedStreams {
  /** Calls served here so far (tests check that they went this way). */
  readonly served: number;
  /** From now on every call goes to grpc-js (the server drains: calls running here finish here). */
  stopTaking(): void;
}

/** The request headers of a call served here; anything else goes to grpc-js. */
function takesHeaders(headers: IncomingHttpHeaders): boolean {
  if (headers[constants.HTTP2_HEADER_PATH] !== CREATE_VERSION_PATH) {
    return false;
  }
  const timeout = headers["grpc-timeout"];
  // One value: grpc-js reads the first of several, which node:http2 gives joined.
  if (timeout !== undefined && (typeof timeout !== "string" || timeout.includes(","))) {
    return false;
  }
  const contentType = headers[constants.HTTP2_HEADER_CONTENT_TYPE];
  const encoding = headers["grpc-encoding"];
  return (contentType === "application/grpc" || contentType === "application/grpc+proto") && (encoding === undefined || encoding === "identity");
}

export function createVersionStreams(options: CreateVersionStreamsOptions): CreateVersionStreams {
  let taking = true;
  let served = 0;
  return {
    get served() {
      return served;
    },
    stopTaking() {
      taking = false;
    },
    takes: (headers) => taking && takesHeaders(headers),
    serve(stream, headers) {
      served++;
      new CreateVersionStream(stream, options, headers["grpc-timeout"] as string | undefined).start();
    },
  };
}

/** One CreateVersion call on its HTTP/2 stream. */
class CreateVersionStream {
  readonly #stream: ServerHttp2Stream;
  readonly #frames: GrpcFrameReader;
  readonly #deserialize: (bytes: Buffer) => unknown;
  readonly #observed: ObservedCall;
  readonly #upload: CreateVersionUpload;
  #headersSent = false;
  /** The call's deadline (ms since the epoch), Infinity without one. */
  #deadline = Number.POSITIVE_INFINITY;
  #deadlineTimer: NodeJS.Timeout | undefined = undefined;
  /** The status waits for the reply's write, then goes out as trailers. */
  #trailersPending = false;
  /** A status was sent, or the stream closed first: as grpc-js's `cancelled`, nothing more happens. */
  #done = false;

  constructor(stream: ServerHttp2Stream, options: CreateVersionStreamsOptions, timeout: string | undefined) {
    this.#stream = stream;
    this.#frames = new GrpcFrameReader(options.maxReceiveMessageBytes);
    this.#deserialize = options.deserialize;
    this.#observed = options.observer.observe(CREATE_VERSION_PATH, true, false);
    const answer: UploadAnswer = (error, reply) => {
      if (error !== null) {
        // Always a toServiceError (CreateVersionUpload.fail); read as grpc-js's serverErrorToStatus does.
        const status = error as Partial<RpcStatusError>;
        this.#sendStatus(typeof status.code === "number" ? status.code : Code.UNKNOWN, status.details ?? status.message ?? "Unknown Error");
      } else if (reply !== undefined && reply !== null) {
        this.#sendReply(reply);
      }
    };
    this.#upload = new CreateVersionUpload(options.registry, stream, answer, options.uploadLimits);
    this.#upload.hearsBytes();
    if (timeout !== undefined) {
      this.#startDeadline(timeout);
    }
  }

  /** As grpc-js's handleTimeoutHeader: a bad value is INTERNAL (once the call is set up), a good one a timer. */
  #startDeadline(timeout: string): void {
    const match = DEADLINE_PATTERN.exec(timeout);
    if (match === null) {
      process.nextTick(() => this.#sendStatus(Code.INTERNAL, `Invalid grpc-timeout value "${timeout}"`));
      return;
    }
    // grpc-js's arithmetic, its 32-bit truncation included (the divert listener has shortened a
    // longer grpc-timeout already: grpc-timeout.ts).
    const timeoutMs = (Number(match[1]) * (DEADLINE_UNIT_MS[match[2] as string] as number)) | 0;
    this.#deadline = Date.now() + timeoutMs;
    this.#deadlineTimer = setTimeout(() => this.#sendStatus(Code.DEADLINE_EXCEEDED, "Deadline exceeded"), timeoutMs);
  }

  start(): void {
    const stream = this.#stream;
    // `on`, not `once`, for the events a stream emits once: no once-wrapper per call.
    stream.on("close", () => this.#closed());
    stream.on("end", () => {
      if (this.#done) {
        return;
      }
      const cut = this.#frames.incomplete;
      if (cut === undefined) {
        this.#upload.end();
      } else {
        this.#upload.fail(cutRequestMessage(cut));
      }
    });
    stream.on("data", (data: Buffer) => this.#data(data));
  }

  #data(data: Buffer): void {
    if (this.#isDone()) {
      return;
    }
    // Before the messages they complete: a message still arriving is progress too (upload-watchdog.ts).
    this.#upload.arrived(data.byteLength);
    let messages: Buffer[];
    try {
      messages = this.#frames.write(data);
    } catch (error) {
      this.#sendStatus(Code.RESOURCE_EXHAUSTED, (error as Error).message);
      return;
    }
    for (const frame of messages) {
      if (this.#done) {
        return;
      }
      // The compressed flag is not read: with the identity encoding, grpc-js takes the bytes as they are.
      let message: unknown;
      try {
        message = this.#deserialize(frame.subarray(GRPC_FRAME_PREFIX_LENGTH));
      } catch {
        this.#sendStatus(Code.INTERNAL, DESERIALIZE_FAILED);
        return;
      }
      this.#observed.received(message);
      const rejection = malformedRequestStatus(message);
      if (rejection !== undefined) {
        this.#sendStatus(rejection.code, rejection.details);
        return;
      }
      this.#upload.received(message as CreateVersionRequestChunk);
    }
  }

  /** grpc-js's checkCancelled: a stream reset by the client ends the call before its close event. */
  #isDone(): boolean {
    if (!this.#done && (this.#stream.destroyed || this.#stream.closed)) {
      this.#closed();
    }
    return this.#done;
  }

  #sendReply(reply: Buffer): void {
    this.#observed.sent(reply);
    if (this.#isDone()) {
      return;
    }
    const stream = this.#stream;
    try {
      stream.respond(responseHeaders(), RESPONSE_OPTIONS);
    } catch {
      // Nothing went out: the client gets a status rather than a call left without an answer.
      this.#sendStatus(Code.INTERNAL, WRITE_FAILED);
      return;
    }
    this.#headersSent = true;
    stream.write(reply, (error) => {
      if (error) {
        this.#sendStatus(Code.INTERNAL, WRITE_FAILED);
      } else {
        this.#sendStatus(Code.OK, "OK");
      }
    });
  }

  /** As grpc-js's sendStatus: trailers after the reply, or a trailers-only response. */
  #sendStatus(code: number, details: string): void {
    if (this.#isDone()) {
      return;
    }
    if (this.#trailersPending) {
      this.#finished(); // as grpc-js: a second status once the trailers are asked for ends the call
      return;
    }
    this.#observed.end(code, details);
    const stream = this.#stream;
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

  /** The status is out: later data is read and dropped; the upload ends (a no-op once it is committed). */
  #finished(): void {
    if (this.#done) {
      return;
    }
    this.#done = true;
    if (this.#deadlineTimer !== undefined) {
      clearTimeout(this.#deadlineTimer);
    }
    this.#stream.resume();
    this.#upload.cancelled();
  }

  /** The stream closed (or was found closed) before a status was sent: the client cancelled, or its deadline passed. */
  #closed(): void {
    if (this.#done) {
      return;
    }
    this.#observed.closedWithoutStatus(this.#deadline);
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
