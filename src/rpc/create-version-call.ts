import type { ServerReadableStream, sendUnaryData } from "@grpc/grpc-js";
import type { CreateVersionRequestChunk } from "../gen/cogment/api/model_registry_pb.js";
import type { VersionRecord } from "../domain/index.js";
import type { PendingUpload, Registry } from "../registry/index.js";
import { invalidArgument } from "../errors/index.js";
import { framedVersionReply } from "./encoded-infos.js";
import { GrpcFramePosition, cutRequestMessage } from "./cut-request-message.js";
import { handlerCallStream } from "./grpc-internals.js";
import { readOneMessageAhead } from "./read-ahead.js";
import { releaseReceivedBytes } from "./release-received-bytes.js";
import { toServiceError } from "./to-service-error.js";
import { type UploadLimits, UploadWatchdog } from "./upload-watchdog.js";
import { requireMessage, validateDataSize, validateModelId, validateUserData } from "./validate.js";

/** Where an upload's request messages come from: paused while the upload waits. */
export interface UploadSource {
  pause(): unknown;
  resume(): unknown;
  isPaused(): boolean;
}

/** How the reply (a pre-framed gRPC frame) or the error status goes back: grpc-js's callback's shape. */
export type UploadAnswer = sendUnaryData<Buffer>;

/**
 * One CreateVersion upload, whoever carries its messages: grpc-js (CreateVersionCall below) or the
 * fast path (create-version-stream.ts), which feed it the decoded messages, the end of the request
 * stream and its cancellation.
 *
 * A message is handled synchronously when it can be (a body chunk of an upload held in memory);
 * while the handler waits (the model looked up at the header, a streamed upload's disk write),
 * the source is paused: later messages stay in its buffer, within its high-water mark, and the
 * client waits (flow control) as it did under `for await`, which cost a promise and an iterator
 * step per message. A message emitted all the same is queued and handled in order.
 * The reply is one pre-framed gRPC frame with the version's info encoding (encoded-infos.ts:
 * framedVersionReply): CreateVersionReply is `version_info = 1`, the same bytes as a
 * VersionUpdate reply.
 */
export class CreateVersionUpload {
  readonly #registry: Registry;
  readonly #source: UploadSource;
  readonly #answer: UploadAnswer;
  /** Called when a streamed upload first waits for the disk: its source should read at most one message ahead. */
  readonly #onStreamedWait: (() => void) | undefined;
  // A client too slow to send ends the upload at once: its reservation must not be held hostage.
  readonly #watchdog: UploadWatchdog;
  #upload: PendingUpload | undefined = undefined;
  /** Messages that arrived while the handler waited, in order. */
  #queue: CreateVersionRequestChunk[] | undefined = undefined;
  #busy = false;
  #ended = false;
  #answered = false;

  constructor(registry: Registry, source: UploadSource, answer: UploadAnswer, limits: UploadLimits, onStreamedWait?: () => void) {
    this.#registry = registry;
    this.#source = source;
    this.#answer = answer;
    this.#onStreamedWait = onStreamedWait;
    this.#watchdog = new UploadWatchdog(limits, (error) => this.fail(error));
    this.#watchdog.waiting();
  }

  /**
   * From now on the source reports the request's bytes as they arrive (arrived()), before the
   * messages they make: the watchdog then sees a large message arriving steadily as progress.
   */
  hearsBytes(): void {
    this.#watchdog.hearsBytes();
  }

  /** `bytes` of the request arrived (see hearsBytes()). */
  arrived(bytes: number): void {
    this.#watchdog.arrived(bytes);
  }

  /** The request stream closed before its end (not cancelled): an error status. */
  closedEarly(): void {
    if (!this.#ended) {
      this.fail(new Error("CreateVersion: the request stream closed before its end"));
    }
  }

  received(chunk: CreateVersionRequestChunk): void {
    if (this.#answered) {
      return;
    }
    this.#watchdog.received(chunk.msg.case === "body" ? chunk.msg.value.dataChunk.byteLength : 0);
    if (this.#busy) {
      (this.#queue ??= []).push(chunk);
      this.#source.pause();
      return;
    }
    this.#handle(chunk);
    if (!this.#busy && !this.#answered) {
      this.#watchdog.waiting();
    }
  }

  /** Handles one message; sets #busy when it has to wait for something. */
  #handle(chunk: CreateVersionRequestChunk): void {
    try {
      const upload = this.#upload;
      if (upload === undefined) {
        this.#wait(
          beginUpload(this.#registry, chunk).then((begun) => {
            this.#upload = begun;
            if (this.#answered) {
              begun.abort(); // cancelled while the model was looked up
            }
          }),
        );
      } else if (chunk.msg.case === "body") {
        // A streamed (archived, large) upload, or one also stored in a shared Redis, hands back a
        // promise: the next chunk waits for it.
        const data = chunk.msg.value.dataChunk;
        const appended = upload.append(data);
        if (appended !== undefined) {
          this.#onStreamedWait?.();
          // Once it settled nothing keeps the chunk (PendingUpload.append): its message buffer is dead.
          this.#wait(appended.finally(() => releaseReceivedBytes(data)));
        } else {
          releaseReceivedBytes(data); // copied: its message buffer is dead (release-received-bytes.ts)
        }
      } else {
        throw invalidArgument(
          chunk.msg.case === "header"
            ? "CreateVersionRequestChunk: a second header was received; only the first message may be a header, every later one must be a body"
            : "CreateVersionRequestChunk: a message without header or body was received; every message after the header must be a body",
        );
      }
    } catch (error) {
      this.fail(error);
    }
  }

  #wait(pending: Promise<void>): void {
    this.#busy = true;
    // Paused at once, not when the next message arrives: the source's buffer then holds what
    // `for await` let it hold (its high-water mark; one message once read-ahead is limited).
    this.#source.pause();
    pending.then(
      () => this.#resume(),
      (error: unknown) => {
        this.#busy = false;
        this.fail(error);
      },
    );
  }

  /** What waited is done: the queued messages are handled, then the source flows again. */
  #resume(): void {
    this.#busy = false;
    const queue = this.#queue;
    while (!this.#answered && !this.#busy && queue !== undefined && queue.length > 0) {
      this.#handle(queue.shift() as CreateVersionRequestChunk);
    }
    if (this.#answered || this.#busy) {
      return;
    }
    if (this.#ended) {
      this.#finish();
      return;
    }
    this.#watchdog.waiting();
    if (this.#source.isPaused()) {
      this.#source.resume();
    }
  }

  /** The client ended its side of the request stream. */
  end(): void {
    this.#ended = true;
    if (!this.#busy && (this.#queue === undefined || this.#queue.length === 0)) {
      this.#finish();
    }
  }

  #finish(): void {
    this.#watchdog.stop();
    if (this.#answered) {
      return;
    }
    const upload = this.#upload;
    if (upload === undefined) {
      this.fail(invalidArgument("CreateVersion: the stream was empty; the first message must be a header with version_info"));
      return;
    }
    upload.finish().then(
      (version) => this.#reply(version),
      (error: unknown) => this.fail(error),
    );
  }

  #reply(version: VersionRecord): void {
    if (!this.#answered) {
      this.#answered = true;
      this.#answer(null, framedVersionReply(version));
    }
  }

  /** Ends the upload (nothing of it is kept) and answers with the error's status. */
  fail(reason: unknown): void {
    this.#watchdog.stop();
    this.#upload?.abort();
    if (!this.#answered) {
      this.#answered = true;
      this.#queue = undefined;
      this.#answer(toServiceError(reason));
    }
  }

  /** The client went away (or the call ended below the upload): the upload is dropped, no answer. */
  cancelled(): void {
    this.#answered = true;
    this.#queue = undefined;
    this.#watchdog.stop();
    this.#upload?.abort();
  }
}

/** CreateVersion as grpc-js serves it: the handler's stream read with 'data' events. */
export class CreateVersionCall {
  readonly #upload: CreateVersionUpload;
  readonly #call: ServerReadableStream<CreateVersionRequestChunk, Buffer>;

  constructor(
    registry: Registry,
    call: ServerReadableStream<CreateVersionRequestChunk, Buffer>,
    callback: sendUnaryData<Buffer>,
    limits: UploadLimits,
  ) {
    this.#call = call;
    this.#upload = new CreateVersionUpload(registry, call, callback, limits, () => readOneMessageAhead(call));
  }

  start(): void {
    const call = this.#call;
    const upload = this.#upload;
    call.on("cancelled", () => upload.cancelled());
    call.on("error", (error: unknown) => upload.fail(error));
    // grpc-js hands over whole messages only: the HTTP/2 stream under the call tells the watchdog
    // of the bytes of a message still arriving, and whether the request stream ended inside one
    // (grpc-js ends the call as after a whole message). Adding a 'data' listener does not resume a
    // stream grpc-js paused.
    const stream = handlerCallStream(call);
    const position = stream === undefined ? undefined : new GrpcFramePosition();
    call.on("close", () => upload.closedEarly());
    call.on("end", () => {
      const cut = position?.incomplete;
      if (cut === undefined) {
        upload.end();
      } else {
        upload.fail(cutRequestMessage(cut));
      }
    });
    call.on("data", (chunk: CreateVersionRequestChunk) => upload.received(chunk));
    if (stream !== undefined && position !== undefined) {
      upload.hearsBytes();
      stream.on("data", (data: Buffer) => {
        position.advance(data);
        upload.arrived(data.byteLength);
      });
    }
  }
}

function beginUpload(registry: Registry, chunk: CreateVersionRequestChunk): Promise<PendingUpload> {
  if (chunk.msg.case !== "header") {
    throw invalidArgument(
      chunk.msg.case === "body"
        ? "CreateVersionRequestChunk: the first message must be a header, a body was received"
        : "CreateVersionRequestChunk: the first message has neither header nor body; it must be a header with version_info",
    );
  }
  const info = requireMessage("CreateVersionRequestChunk.header.version_info", chunk.msg.value.versionInfo);
  return registry.beginUpload({
    modelId: validateModelId("header.version_info.model_id", info.modelId),
    archived: info.archived,
    creationTimestamp: info.creationTimestamp,
    dataHash: info.dataHash,
    dataSize: validateDataSize("header.version_info.data_size", info.dataSize),
    userData: validateUserData("header.version_info.user_data", info.userData),
  });
}
