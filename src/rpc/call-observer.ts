/*
 * The one place that watches every call: a grpc-js server interceptor that counts the
 * go-grpc-prometheus metrics and writes ONE log line when the call ends.
 *
 * A call ends with the status the handler sends (OK or an error), or when its stream closes
 * without one passing here. grpc-js sends some statuses by itself, below the interceptors (a
 * request it cannot parse, one over the size limit, the deadline): those are read back from the
 * HTTP/2 stream's sent headers or trailers. With no status there, the call was CANCELLED (or hit
 * its DEADLINE_EXCEEDED, if the client's deadline is over). A status sent after the client reset
 * the stream reaches nobody: the call counts as closed, like one that never got a status.
 *
 * Per message it only adds to plain numbers: no allocation, no logging.
 */
import { cutText } from "../cut-text.js";
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { Deadline, Metadata, ServerInterceptingCall, ServerInterceptingCallInterface, ServerInterceptor } from "@grpc/grpc-js";
import type { Logger } from "../logger.js";
import { interceptedCallStream } from "./grpc-internals.js";
import { RejectedRequest } from "./service-definition.js";
import { malformedRequestStatus } from "./reject-malformed.js";
import { Code } from "../errors/index.js";
// Types only: prom-client is loaded only when the metrics endpoint is on (metrics-api.ts).
import { grpcCodeName } from "../metrics/grpc-code-name.js";
import type { DataTransferCounts, GrpcServerMetrics, MethodStats } from "../metrics/metrics-api.js";

/** What the observer reads in the messages of one method (all optional). */
export interface MethodObservation<Req = unknown, Res = unknown> {
  /** The model named by the call's first request message. */
  modelId?(request: Req): string | undefined;
  /** Version data bytes carried by a received message. */
  receivedDataBytes?(message: Req): number;
  /** Version data bytes carried by a sent message. */
  sentDataBytes?(message: Res): number;
}

export interface ObservedMethod {
  /** "/package.Service/Method" */
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  readonly observation: MethodObservation;
}

export interface CallObserverOptions {
  readonly log: Logger;
  readonly metrics: { readonly grpc: GrpcServerMetrics; readonly dataTransfer: DataTransferCounts };
  /** Methods known in advance: their metrics exist (at zero) from the start, and their messages name models. */
  readonly methods: readonly ObservedMethod[];
}

export type CallLogLevel = "debug" | "info" | "warn" | "error";

/** The level of a call's log line, from its status: the client's mistakes are info, the server's troubles warn or error. */
export function callLogLevel(code: number): CallLogLevel {
  switch (code) {
    case Code.OK:
      return "debug";
    case Code.NOT_FOUND:
    case Code.INVALID_ARGUMENT:
    case Code.CANCELLED:
      return "info";
    case Code.RESOURCE_EXHAUSTED:
    case Code.UNAVAILABLE:
    case Code.DEADLINE_EXCEEDED:
      return "warn";
    default:
      return "error";
  }
}

/** Longest model id put in a log line (valid ones have at most 250 characters; invalid ones may be huge). */
const MAX_LOGGED_MODEL_ID = 256;
/** Deadline timers may fire a little before the wall clock reaches the deadline. */
const DEADLINE_SLACK_MS = 5;
const NOTHING_OBSERVED: MethodObservation = {};
const CANCELLED_BY_CLIENT = "the stream closed before a status was sent (cancelled by the client)";

interface MethodEntry {
  readonly stats: MethodStats;
  readonly observation: MethodObservation;
}

/** One call as the observer sees it: its messages and its end. */
export class ObservedCall {
  readonly #entry: MethodEntry;
  readonly #observer: CallObserverState;
  readonly #requestNumber: number;
  readonly #startedAt: number;
  #modelId: string | undefined = undefined;
  #firstMessage = true;
  #anyMessage = false;
  #ended = false;

  constructor(entry: MethodEntry, observer: CallObserverState) {
    this.#entry = entry;
    this.#observer = observer;
    this.#requestNumber = observer.nextRequestNumber();
    this.#startedAt = performance.now();
    entry.stats.started();
  }

  received(message: unknown): void {
    const { stats, observation } = this.#entry;
    stats.received();
    this.#anyMessage = true;
    if (message instanceof RejectedRequest) {
      return; // nothing to read in it; reject-malformed.ts answers it
    }
    if (this.#firstMessage) {
      this.#firstMessage = false;
      if (observation.modelId !== undefined) {
        const modelId = observation.modelId(message);
        if (typeof modelId === "string" && modelId !== "") {
          this.#modelId = cutText(modelId, MAX_LOGGED_MODEL_ID);
        }
      }
    }
    if (observation.receivedDataBytes !== undefined) {
      this.#observer.dataTransfer.received(observation.receivedDataBytes(message));
    }
  }

  sent(message: unknown): void {
    const { stats, observation } = this.#entry;
    stats.sent();
    if (observation.sentDataBytes !== undefined) {
      this.#observer.dataTransfer.sent(observation.sentDataBytes(message));
    }
  }

  /** No request message has arrived yet. */
  awaitsFirstMessage(): boolean {
    return !this.#anyMessage;
  }

  /** The stream closed: a no-op if a status was sent already. */
  closed(call: ServerInterceptingCallInterface, cancelledDetails = CANCELLED_BY_CLIENT): void {
    if (this.#ended) {
      return;
    }
    const sent = statusSentBelow(call);
    if (sent !== undefined) {
      this.end(sent.code, sent.details);
      return;
    }
    const deadline = call.getDeadline();
    this.closedWithoutStatus(deadline instanceof Date ? deadline.getTime() : deadline, cancelledDetails);
  }

  /** The stream closed before a status was sent: DEADLINE_EXCEEDED if the call's deadline (ms, Infinity: none) is over, else CANCELLED. */
  closedWithoutStatus(deadlineMs: number, cancelledDetails = CANCELLED_BY_CLIENT): void {
    if (Number.isFinite(deadlineMs) && Date.now() >= deadlineMs - DEADLINE_SLACK_MS) {
      this.end(Code.DEADLINE_EXCEEDED, "deadline exceeded");
    } else {
      this.end(Code.CANCELLED, cancelledDetails);
    }
  }

  end(code: number, details: string): void {
    if (this.#ended) {
      return;
    }
    this.#ended = true;
    const ms = performance.now() - this.#startedAt;
    const { stats } = this.#entry;
    stats.handled(code, ms / 1000);
    const level = callLogLevel(code);
    const log = this.#observer.log;
    if (log.isLevelEnabled(level)) {
      log[level](
        {
          requestId: this.#observer.requestId(this.#requestNumber),
          grpcService: stats.service,
          method: stats.method,
          code: grpcCodeName(code),
          durationMs: Math.round(ms * 1000) / 1000,
          modelId: this.#modelId,
          details: code === Code.OK ? undefined : details,
        },
        "call finished",
      );
    }
  }
}

interface SentStatus {
  readonly code: number;
  readonly details: string;
}

type SentHeaders = Readonly<Record<string, unknown>> | undefined;

/**
 * The status grpc-js sent by itself on the call's HTTP/2 stream, if any. Reads grpc-js internals
 * (the base call's `stream`, grpc-internals.ts), so anything unexpected gives undefined.
 */
function statusSentBelow(call: ServerInterceptingCallInterface): SentStatus | undefined {
  const stream = interceptedCallStream(call);
  if (stream === undefined) {
    return undefined;
  }
  let headers: SentHeaders;
  try {
    headers = stream.sentTrailers?.["grpc-status"] !== undefined ? stream.sentTrailers : stream.sentHeaders;
  } catch {
    return undefined;
  }
  const code = Number(headers?.["grpc-status"] ?? Number.NaN);
  if (!Number.isInteger(code)) {
    return undefined;
  }
  const message = headers?.["grpc-message"];
  let details = typeof message === "string" ? message : "";
  try {
    details = decodeURIComponent(details);
  } catch {
    // Kept as sent.
  }
  return { code, details };
}

/**
 * Whether the call's HTTP/2 stream is closed already (reset by the client), as grpc-js checks it
 * itself before sending; reads the base call's `stream`, so anything unexpected gives false.
 */
function streamClosedBelow(call: ServerInterceptingCallInterface): boolean {
  const stream = interceptedCallStream(call);
  return stream !== undefined && (stream.closed || stream.destroyed);
}

class CallObserverState {
  readonly log: Logger;
  readonly dataTransfer: DataTransferCounts;
  /** Distinguishes the request ids of this server from those of earlier runs. */
  readonly #prefix = randomBytes(3).toString("hex");
  #requests = 0;

  constructor(log: Logger, dataTransfer: DataTransferCounts) {
    this.log = log;
    this.dataTransfer = dataTransfer;
  }

  nextRequestNumber(): number {
    return ++this.#requests;
  }

  requestId(requestNumber: number): string {
    return `${this.#prefix}-${requestNumber.toString(36)}`;
  }
}

type Call = ServerInterceptingCallInterface;
/** grpc-js's InterceptingServerListener (not exported by name). */
type InterceptingServerListener = Parameters<Call["start"]>[0];
type PartialStatusObject = Parameters<Call["sendStatus"]>[0];

/** grpc-js's (1.14) answers to a call of a method taking one request message that did not get exactly one. */
const NO_REQUEST_MESSAGE = /^Received no request message for server streaming method (\S+)$/;
const SECOND_REQUEST_MESSAGE = /^Received a second request message for server streaming method (\S+)$/;

/**
 * grpc-js answers a unary or server-streaming call whose request stream ended without a whole
 * message, or that sent a second one, UNIMPLEMENTED about a "server streaming method": the wrong
 * code (the method exists) and a misleading text for a unary method. Such a request is malformed:
 * INVALID_ARGUMENT saying so. (A client that cancels can also end its side first; it reads no status.)
 */
function withOneRequestMessageStatus(status: PartialStatusObject): PartialStatusObject {
  if (status.code !== Code.UNIMPLEMENTED || status.details === undefined) {
    return status;
  }
  const none = NO_REQUEST_MESSAGE.exec(status.details);
  if (none !== null) {
    return { ...status, code: Code.INVALID_ARGUMENT, details: noRequestMessageDetails(none[1] as string) };
  }
  const second = SECOND_REQUEST_MESSAGE.exec(status.details);
  if (second !== null) {
    return { ...status, code: Code.INVALID_ARGUMENT, details: secondRequestMessageDetails(second[1] as string) };
  }
  return status;
}

/** INVALID_ARGUMENT's text for a call of a one-message method whose request stream ended without a whole message. */
export function noRequestMessageDetails(path: string): string {
  return `${path}: the request stream ended without a whole request message; the method takes exactly one`;
}

/** INVALID_ARGUMENT's text for a call of a one-message method that sent a second message. */
export function secondRequestMessageDetails(path: string): string {
  return `${path}: a second request message was sent; the method takes exactly one`;
}

/** What a call's log line says when its client ended the call before sending its request message. */
export const ENDED_BEFORE_REQUEST = "the client ended the call before sending its request message (cancelled by the client)";

/**
 * The call as the layers above it see it: each event is passed on as it comes (nothing is held
 * back), after the observer has noted it. One object is its own listener for the call below,
 * where grpc-js's ServerInterceptingCall makes a responder, a listener and a closure per event.
 * A request that did not decode is answered here (reject-malformed.ts), its status passing
 * through the observation like any other.
 */
class ObservingCall implements ServerInterceptingCallInterface, InterceptingServerListener {
  /** `nextCall`, as grpc-js names it: handlerCallStream (grpc-internals.ts) follows it down to the stream. */
  readonly nextCall: ServerInterceptingCallInterface;
  readonly #observed: ObservedCall;
  readonly #requestStream: boolean;
  #listener: InterceptingServerListener | undefined = undefined;
  /** As in grpc-js's intercepting listener: once cancelled, later events are not passed on. */
  #cancelled = false;

  constructor(next: ServerInterceptingCallInterface, observed: ObservedCall, requestStream: boolean) {
    this.nextCall = next;
    this.#observed = observed;
    this.#requestStream = requestStream;
  }

  start(listener: InterceptingServerListener): void {
    this.#listener = listener;
    this.nextCall.start(this);
  }

  onReceiveMetadata(metadata: Metadata): void {
    if (!this.#cancelled) {
      this.#listener?.onReceiveMetadata(metadata);
    }
  }

  onReceiveMessage(message: unknown): void {
    if (this.#cancelled) {
      return;
    }
    this.#observed.received(message);
    const rejection = malformedRequestStatus(message);
    if (rejection !== undefined) {
      this.sendStatus(rejection);
      return;
    }
    this.#listener?.onReceiveMessage(message);
  }

  onReceiveHalfClose(): void {
    if (!this.#cancelled) {
      this.#listener?.onReceiveHalfClose();
    }
  }

  onCancel(): void {
    this.#cancelled = true;
    this.#observed.closed(this.nextCall);
    this.#listener?.onCancel();
  }

  sendMetadata(metadata: Metadata): void {
    this.nextCall.sendMetadata(metadata);
  }

  sendMessage(message: unknown, callback: () => void): void {
    this.#observed.sent(message);
    this.nextCall.sendMessage(message, callback);
  }

  sendStatus(grpcJsStatus: PartialStatusObject): void {
    const next = this.nextCall;
    const status = this.#requestStream ? grpcJsStatus : withOneRequestMessageStatus(grpcJsStatus);
    if (streamClosedBelow(next)) {
      this.#observed.closed(next); // reset by the client first: this status reaches nobody
    } else if (grpcJsStatus.code === Code.UNIMPLEMENTED && !this.#requestStream && this.#observed.awaitsFirstMessage()) {
      // grpc-js's answer to a call whose client ended its side before sending the request
      // message. Node's http2 (so grpc-js) cancels a call by ending the stream, then resetting
      // it: that half-close can arrive before the reset, but it is still the client cancelling.
      this.#observed.closed(next, ENDED_BEFORE_REQUEST);
    } else {
      this.#observed.end(status.code, status.details ?? "");
    }
    next.sendStatus(status);
  }

  startRead(): void {
    this.nextCall.startRead();
  }

  getPeer(): string {
    return this.nextCall.getPeer();
  }

  getDeadline(): Deadline {
    return this.nextCall.getDeadline();
  }

  getHost(): string {
    return this.nextCall.getHost();
  }

  getAuthContext(): ReturnType<Call["getAuthContext"]> {
    return this.nextCall.getAuthContext();
  }

  getConnectionInfo(): ReturnType<Call["getConnectionInfo"]> {
    return this.nextCall.getConnectionInfo();
  }

  getMetricsRecorder(): ReturnType<Call["getMetricsRecorder"]> {
    return this.nextCall.getMetricsRecorder();
  }
}

export interface CallObserver {
  /** The grpc-js server interceptor that meters and logs every call, and answers requests that did not decode. */
  readonly interceptor: ServerInterceptor;
  /** A call served below grpc-js (create-version-stream.ts), metered and logged as the interceptor does it. */
  observe(path: string, requestStream: boolean, responseStream: boolean): ObservedCall;
}

/** The call observer: one state (request ids, metrics) for the calls grpc-js serves and those served below it. */
export function createCallObserver(options: CallObserverOptions): CallObserver {
  const { grpc: grpcMetrics, dataTransfer } = options.metrics;
  const state = new CallObserverState(options.log, dataTransfer);
  const entries = new Map<string, MethodEntry>();
  for (const method of options.methods) {
    grpcMetrics.initialize(method.path, method.requestStream, method.responseStream);
    entries.set(method.path, {
      stats: grpcMetrics.method(method.path, method.requestStream, method.responseStream),
      observation: method.observation,
    });
  }
  const entryFor = (path: string, requestStream: boolean, responseStream: boolean): MethodEntry => {
    let entry = entries.get(path);
    if (entry === undefined) {
      // Health, reflection: metered and logged, nothing read in their messages.
      entry = { stats: grpcMetrics.method(path, requestStream, responseStream), observation: NOTHING_OBSERVED };
      entries.set(path, entry);
    }
    return entry;
  };

  return {
    interceptor: (descriptor, next) => {
      const observed = new ObservedCall(entryFor(descriptor.path, descriptor.requestStream, descriptor.responseStream), state);
      // grpc-js types an interceptor's result as its ServerInterceptingCall class, but uses it only
      // through ServerInterceptingCallInterface (getServerInterceptingCall's declared return type).
      return new ObservingCall(next, observed, descriptor.requestStream) as unknown as ServerInterceptingCall;
    },
    observe: (path, requestStream, responseStream) => new ObservedCall(entryFor(path, requestStream, responseStream), state),
  };
}
