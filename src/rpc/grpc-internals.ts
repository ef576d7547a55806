/**
 * Every private field of @grpc/grpc-js that this server reads or patches, and nothing else.
 *
 * grpc-js has no public hook for what these give us: the HTTP/2 stream under a call (the statuses
 * grpc-js sends by itself, resetting a stalled reader), the node:http2 servers and sessions (per-peer
 * limits, idle connections at shutdown, the receive window) and its message framing (sending stored
 * frames without a copy). package.json pins grpc-js to the minor checked here (~1.14).
 *
 * Each accessor is defensive: if a field is not what we expect, it gives undefined (or false) and its
 * caller carries on without its feature. `checkGrpcInternals()` (at start, and in the test suite
 * against the installed grpc-js: test/e2e/grpc-internals.test.ts) names each such field and the grpc-js
 * version, so an upgrade that changes one fails the tests instead of quietly losing a feature.
 */
import { EventEmitter } from "node:events";
import type { Http2Server, Http2Session, IncomingHttpHeaders, ServerHttp2Stream, Settings } from "node:http2";
import { Server as NetServer } from "node:net";
import { Metadata, Server, ServerInterceptingCall, type ServerInterceptingCallInterface } from "@grpc/grpc-js";
import grpcJsManifest from "@grpc/grpc-js/package.json" with { type: "json" };
import grpcJsServerCall from "@grpc/grpc-js/build/src/server-call.js";
import grpcJsServerInterceptors from "@grpc/grpc-js/build/src/server-interceptors.js";
import { clampGrpcTimeout } from "./grpc-timeout.js";

/** A private field of grpc-js that is missing or not of the expected type. */
export interface GrpcInternalsProblem {
  /** e.g. "Server.http2Servers" */
  readonly field: string;
  readonly expected: string;
  /** What runs without it. */
  readonly feature: string;
}

const FEATURE = {
  preFramed: "RetrieveVersionData frames are sent without a copy",
  callStream: "statuses grpc-js sends by itself are logged and counted with their code",
  reset: "the stream of a stalled reader is reset (COGMENT_MODEL_REGISTRY_SEND_IDLE_TIMEOUT)",
  streamWindow: "the HTTP/2 stream window is raised (COGMENT_MODEL_REGISTRY_HTTP2_WINDOW_BYTES)",
  http2Servers:
    "per-address stream limits, the prompt close of idle connections at shutdown and the HTTP/2 connection window",
  divertStreams: "CreateVersion is served below grpc-js's call machinery (create-version-stream.ts)",
} as const;

/** The installed grpc-js version, for the messages that name a changed field. */
export const grpcJsVersion: string = typeof grpcJsManifest.version === "string" ? grpcJsManifest.version : "unknown";

/** One line naming the field, what we expected, the grpc-js version and what is off without it. */
export function describeGrpcInternalsProblem(problem: GrpcInternalsProblem): string {
  return `grpc-js ${grpcJsVersion} internals changed: ${problem.field} is not ${problem.expected}; off: ${problem.feature}`;
}

/**
 * grpc-js's own modules, imported by their paths so that Node (which reads them from the CommonJS
 * cache grpc-js itself uses) and the production bundle (one copy of each file) give the very
 * instance grpc-js runs.
 */
const GRPC_JS_MODULES: Readonly<Record<string, unknown>> = {
  "server-interceptors.js": grpcJsServerInterceptors,
  "server-call.js": grpcJsServerCall,
};

function grpcJsModule(file: string): Record<string, unknown> | undefined {
  const module = GRPC_JS_MODULES[file];
  return typeof module === "object" && module !== null ? (module as Record<string, unknown>) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Calls: the HTTP/2 stream under a call.

function isServerStream(value: unknown): value is ServerHttp2Stream {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { close?: unknown }).close === "function" &&
    typeof (value as { respond?: unknown }).respond === "function"
  );
}

/**
 * The HTTP/2 stream of the call an interceptor gets as `next` when it sits closest to the transport:
 * grpc-js's BaseServerInterceptingCall keeps it in its private `stream`.
 */
export function interceptedCallStream(call: ServerInterceptingCallInterface): ServerHttp2Stream | undefined {
  const stream = (call as unknown as { stream?: unknown }).stream;
  return isServerStream(stream) ? stream : undefined;
}

/**
 * The HTTP/2 stream under a call as a handler gets it: its private `call` (the outermost intercepting
 * call), then each interceptor's private `nextCall`, down to the base call's `stream`.
 */
export function handlerCallStream(call: object): ServerHttp2Stream | undefined {
  let link: unknown = (call as { call?: unknown }).call;
  for (let depth = 0; depth < 16 && typeof link === "object" && link !== null; depth++) {
    const stream = (link as { stream?: unknown }).stream;
    if (isServerStream(stream)) {
      return stream;
    }
    link = (link as { nextCall?: unknown }).nextCall;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Message framing.

type SerializeMessage = (this: { handler?: { serialize?: unknown } }, value: unknown) => Buffer;

function baseCallPrototype(): { serializeMessage?: unknown } | undefined {
  const base = grpcJsModule("server-interceptors.js")?.BaseServerInterceptingCall as { prototype?: { serializeMessage?: unknown } } | undefined;
  return base?.prototype;
}

/**
 * Wraps grpc-js's framing of outgoing messages (the private
 * `BaseServerInterceptingCall.prototype.serializeMessage`, for every call of the process): a value
 * `sendAsIs` accepts, given the response serializer of the call's method (its private
 * `handler.serialize`), is written to the HTTP/2 stream unchanged; any other goes through grpc-js's
 * own code. False (nothing patched) if the method is missing.
 */
export function wrapMessageFraming(sendAsIs: (serialize: unknown, value: unknown) => value is Buffer): boolean {
  const prototype = baseCallPrototype();
  const original = prototype?.serializeMessage;
  if (prototype === undefined || typeof original !== "function") {
    return false;
  }
  const framing = original as SerializeMessage;
  prototype.serializeMessage = function serializeOrSendAsIs(this: { handler?: { serialize?: unknown } }, value: unknown): Buffer {
    return sendAsIs(this.handler?.serialize, value) ? value : framing.call(this, value);
  };
  return true;
}

// ---------------------------------------------------------------------------------------------
// The server: its node:http2 servers, sessions and settings.

interface ServerInternals {
  commonServerOptions?: unknown;
  http2Servers?: unknown;
  onStreamOpened?: unknown;
}

/**
 * Call before bindAsync: new sessions advertise `windowBytes` as their per-stream window (in the
 * private `commonServerOptions` every http2 server is created with). False if that field is missing.
 */
export function setInitialStreamWindow(server: Server, windowBytes: number): boolean {
  const internals = server as unknown as ServerInternals;
  const options = internals.commonServerOptions;
  if (typeof options !== "object" || options === null) {
    return false;
  }
  const common = options as { settings?: Settings };
  common.settings = { ...common.settings, initialWindowSize: windowBytes };
  return true;
}

/**
 * The node:http2 servers of a grpc-js Server, from its private `http2Servers` map (filled by
 * bindAsync). Undefined if that field changed.
 */
export function grpcHttp2Servers(server: Server): Http2Server[] | undefined {
  const servers = (server as unknown as ServerInternals).http2Servers;
  if (!(servers instanceof Map)) {
    return undefined;
  }
  const list: unknown[] = [...servers.keys()];
  return list.every((candidate) => candidate instanceof NetServer) ? (list as Http2Server[]) : undefined;
}

/** The open client sessions of a grpc-js Server (each http2Servers entry's private `sessions`). */
export function grpcHttp2Sessions(server: Server): Http2Session[] {
  const servers = (server as unknown as ServerInternals).http2Servers;
  const sessions: Http2Session[] = [];
  if (servers instanceof Map) {
    for (const info of servers.values() as Iterable<unknown>) {
      const entry = (info as { sessions?: unknown } | undefined)?.sessions;
      if (entry instanceof Set) {
        sessions.push(...(entry as Set<Http2Session>));
      }
    }
  }
  return sessions;
}

type StreamListener = (this: Http2Server, stream: ServerHttp2Stream, headers: IncomingHttpHeaders, ...rest: unknown[]) => void;

/** Whether every node:http2 server of a bound grpc-js Server has one 'stream' listener (grpc-js's). */
function hasOneStreamListener(http2Servers: readonly Http2Server[]): boolean {
  return http2Servers.every((http2Server) => http2Server.listenerCount("stream") === 1);
}

/** Streams served without grpc-js: those whose request headers `takes` accepts go to `serve`. */
export interface DivertedStreams {
  takes(headers: IncomingHttpHeaders): boolean;
  serve(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void;
}

/**
 * Puts a dispatcher before grpc-js's 'stream' listener (set by its private `_setupHandlers`) on each
 * node:http2 server of a bound grpc-js Server. A stream `diverted.takes` is served by
 * `diverted.serve`, once what grpc-js's `_streamHandler` does first for every stream is done: an
 * 'error' listener (an error event always comes with the close event that matters) and the private
 * `onStreamOpened` (grpc-js's connection idle timeout counts the open streams). Any other stream goes
 * to grpc-js's listener, same `this`, same arguments. False (nothing changed) if a field is not as
 * expected.
 */
export function divertStreams(server: Server, diverted: DivertedStreams): boolean {
  const http2Servers = grpcHttp2Servers(server);
  const onStreamOpened = (server as unknown as ServerInternals).onStreamOpened;
  if (http2Servers === undefined || typeof onStreamOpened !== "function" || !hasOneStreamListener(http2Servers)) {
    return false;
  }
  const opened = onStreamOpened as (this: Server, stream: ServerHttp2Stream) => void;
  for (const http2Server of http2Servers) {
    const grpcJsListener = http2Server.listeners("stream")[0] as StreamListener;
    http2Server.removeListener("stream", grpcJsListener);
    // node:http2 emits 'stream' with these four arguments; named, not gathered (a rest array per call).
    http2Server.on("stream", function divert(this: Http2Server, stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]) {
      clampGrpcTimeout(headers);
      if (!diverted.takes(headers)) {
        grpcJsListener.call(this, stream, headers, flags, rawHeaders);
        return;
      }
      // `on`, not `once` (no wrapper per call): the listener only has to exist.
      stream.on("error", ignoreStreamError);
      opened.call(server, stream);
      diverted.serve(stream, headers);
    } as StreamListener);
  }
  return true;
}

function ignoreStreamError(): void {
  // As grpc-js: the close event that follows handles the end of the call.
}

// ---------------------------------------------------------------------------------------------
// The check.

/**
 * Checks every private field used above against the installed grpc-js, on objects built for the
 * purpose (no socket, no call): an empty list when all are what we expect. Pass the server once
 * bound to check its http2 servers too.
 */
export function checkGrpcInternals(boundServer?: Server): GrpcInternalsProblem[] {
  const problems: GrpcInternalsProblem[] = [];
  const expect = (ok: boolean, field: string, expected: string, feature: string): void => {
    if (!ok) {
      problems.push({ field, expected, feature });
    }
  };

  expect(typeof baseCallPrototype()?.serializeMessage === "function", "BaseServerInterceptingCall.prototype.serializeMessage", "a function", FEATURE.preFramed);
  checkCallChain(expect);

  // grpc.enable_channelz 0: a server never shut down must not stay registered in channelz.
  const server = new Server({ "grpc.enable_channelz": 0 });
  const internals = server as unknown as ServerInternals;
  expect(
    typeof internals.commonServerOptions === "object" && internals.commonServerOptions !== null,
    "Server.commonServerOptions",
    "an object",
    FEATURE.streamWindow,
  );
  expect(internals.http2Servers instanceof Map, "Server.http2Servers", "a Map", FEATURE.http2Servers);
  expect(typeof internals.onStreamOpened === "function", "Server.onStreamOpened", "a function", FEATURE.divertStreams);

  if (boundServer !== undefined) {
    const bound = (boundServer as unknown as ServerInternals).http2Servers;
    const entries = bound instanceof Map ? [...(bound as Map<unknown, unknown>).entries()] : [];
    expect(
      entries.length > 0 && entries.every(([key]) => key instanceof NetServer),
      "Server.http2Servers (bound)",
      "a Map keyed by node:http2 servers",
      FEATURE.http2Servers,
    );
    expect(
      entries.every(([, info]) => (info as { sessions?: unknown } | undefined)?.sessions instanceof Set),
      "Server.http2Servers entry .sessions",
      "a Set of sessions",
      FEATURE.http2Servers,
    );
    const http2Servers = grpcHttp2Servers(boundServer);
    expect(
      http2Servers !== undefined && hasOneStreamListener(http2Servers),
      "Server._setupHandlers",
      "one 'stream' listener per node:http2 server",
      FEATURE.divertStreams,
    );
  }
  return problems;
}

type Expect = (ok: boolean, field: string, expected: string, feature: string) => void;

/** Builds a base call on a stand-in stream, an intercepting call and a handler's call around it. */
function checkCallChain(expect: Expect): void {
  const interceptors = grpcJsModule("server-interceptors.js");
  const serverCalls = grpcJsModule("server-call.js");
  const Base = interceptors?.BaseServerInterceptingCall;
  const Writable = serverCalls?.ServerWritableStreamImpl;
  expect(typeof Base === "function", "server-interceptors.js BaseServerInterceptingCall", "a class", FEATURE.callStream);
  expect(typeof Writable === "function", "server-call.js ServerWritableStreamImpl", "a class", FEATURE.reset);
  if (typeof Base !== "function" || typeof Writable !== "function") {
    return;
  }
  // Only what the constructors touch: events, pause(), the session's socket.
  const stream: object = Object.assign(new EventEmitter(), { pause: () => undefined, close: () => undefined, respond: () => undefined });
  const handler = { path: "/grpc.internals.Check/Check", serialize: (value: unknown) => value };
  let base: Record<string, unknown>;
  try {
    base = new (Base as new (...args: unknown[]) => Record<string, unknown>)(stream, {}, null, handler, {});
  } catch {
    expect(false, "BaseServerInterceptingCall constructor", "(stream, headers, callEventTracker, handler, options)", FEATURE.callStream);
    return;
  }
  expect(interceptedCallStream(base as unknown as ServerInterceptingCallInterface) === stream, "BaseServerInterceptingCall.stream", "the call's HTTP/2 stream", FEATURE.callStream);
  expect(
    (base.handler as { serialize?: unknown } | undefined)?.serialize === handler.serialize,
    "BaseServerInterceptingCall.handler.serialize",
    "the method's response serializer",
    FEATURE.preFramed,
  );
  const intercepting = new ServerInterceptingCall(base as unknown as ServerInterceptingCallInterface);
  expect(
    (intercepting as unknown as { nextCall?: unknown }).nextCall === base,
    "ServerInterceptingCall.nextCall",
    "the call it wraps",
    FEATURE.reset,
  );
  const handlerCall = new (Writable as new (...args: unknown[]) => object)(handler.path, intercepting, new Metadata(), undefined);
  expect(handlerCallStream(handlerCall) === stream, "ServerWritableStreamImpl.call", "the intercepting call", FEATURE.reset);
}
