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
 * same event (diverted-call.ts; test/e2e/create-version-stream.test.ts compares the two byte for
 * byte), a `grpc-timeout` deadline included. Which calls come here: fast-path.ts.
 */
import type { ServerHttp2Stream } from "node:http2";
import type { CreateVersionRequestChunk } from "../gen/cogment/api/model_registry_pb.js";
import type { Registry } from "../registry/index.js";
import type { CallObserver } from "./call-observer.js";
import { CreateVersionUpload, type UploadAnswer } from "./create-version-call.js";
import { cutRequestMessage } from "./cut-request-message.js";
import { DivertedCall, type RequestReading, errorStatus } from "./diverted-call.js";
import type { ServeDiverted } from "./fast-path.js";
import type { UploadLimits } from "./upload-watchdog.js";

export const CREATE_VERSION_PATH = "/cogmentAPI.ModelRegistrySP/CreateVersion";

export interface CreateVersionStreamsOptions extends RequestReading {
  readonly registry: Registry;
  readonly uploadLimits: UploadLimits;
  readonly observer: CallObserver;
}

/** Serves a CreateVersion call taken below grpc-js (fast-path.ts). */
export function serveCreateVersion(options: CreateVersionStreamsOptions): ServeDiverted {
  return (stream, timeout) => new CreateVersionStream(stream, options, timeout).start();
}

/** One CreateVersion call on its HTTP/2 stream. */
class CreateVersionStream extends DivertedCall {
  readonly #upload: CreateVersionUpload;

  constructor(stream: ServerHttp2Stream, options: CreateVersionStreamsOptions, timeout: string | undefined) {
    super(stream, options.observer.observe(CREATE_VERSION_PATH, true, false), timeout, options);
    const answer: UploadAnswer = (error, reply) => {
      if (error !== null) {
        // Always a toServiceError (CreateVersionUpload.fail).
        const status = errorStatus(error);
        this.sendStatus(status.code, status.details);
      } else if (reply !== undefined && reply !== null) {
        this.sendReply(reply);
      }
    };
    this.#upload = new CreateVersionUpload(options.registry, stream, answer, options.uploadLimits);
    this.#upload.hearsBytes();
  }

  start(): void {
    const stream = this.stream;
    stream.on("end", () => {
      if (this.done) {
        return;
      }
      const cut = this.incompleteMessage;
      if (cut === undefined) {
        this.#upload.end();
      } else {
        this.#upload.fail(cutRequestMessage(cut));
      }
    });
    const take = (message: unknown): void => this.#upload.received(message as CreateVersionRequestChunk);
    stream.on("data", (data: Buffer) => {
      if (this.isDone()) {
        return;
      }
      // Before the messages they complete: a message still arriving is progress too (upload-watchdog.ts).
      this.#upload.arrived(data.byteLength);
      this.receive(data, take);
    });
  }

  /** The upload ends (a no-op once it is committed). */
  protected ended(): void {
    this.#upload.cancelled();
  }
}
