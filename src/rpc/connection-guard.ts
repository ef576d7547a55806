/**
 * Watches the client connections of the grpc-js server at the node:http2 level, for three jobs that
 * grpc-js has no option for:
 * - every request stream's DATA pieces must not be too small for their number (data-chunk-guard.ts):
 *   what a stream's pieces cost the server stays proportional to its bytes.
 * - the per-peer-address stream limits (peer-limiter.ts): a connection from a banned address is
 *   closed as soon as it is accepted, before any HTTP/2 work; a connection whose address goes over
 *   a limit gets GOAWAY (ENHANCE_YOUR_CALM) and is closed.
 * - shutdown: grpc-js's tryShutdown sends GOAWAY and waits for every connection to close, and Node
 *   closes a connection gracefully by waiting for the client to close its side, which a stalled or
 *   careless client never does. Once shutting down, a connection with no open stream is closed at
 *   once, and a busy one as soon as its last stream ends (the grace period still bounds those).
 */
import { type Http2Server, type Http2Session, type ServerHttp2Stream, constants } from "node:http2";
import type { Socket } from "node:net";
import type { Logger } from "../logger.js";
import type { PeerLimitCounts } from "../metrics/metrics-api.js";
import { MIN_AVERAGE_DATA_BYTES, type TinyDataChunks, guardDataChunks } from "./data-chunk-guard.js";
import { type LimitExceeded, type PeerLimiter, peerAddress, peerLimitKey } from "./peer-limiter.js";

export interface ConnectionGuardOptions {
  /** Undefined: no limits, only the shutdown job. */
  readonly limiter: PeerLimiter | undefined;
  /** Leading bits of an IPv6 client address the limits count as one client (peerLimitKey); 64 by default. */
  readonly ipv6PrefixBits?: number;
  readonly counts: PeerLimitCounts;
  readonly log: Logger;
}

export interface ConnectionGuard {
  /**
   * For shutdown, once grpc-js's tryShutdown has sent its GOAWAY: closes every connection without
   * an open stream now, and each other one when its last stream ends.
   */
  closeWhenIdle(): void;
}

interface TrackedSession {
  readonly peer: string;
  /** What the limits count it as (an IPv6 peer's prefix, its /64 by default). */
  readonly limitKey: string;
  /** The accepted TCP socket (the session only exposes a proxy of it that cannot close it). */
  readonly socket: Socket | undefined;
  openStreams: number;
  cutOff: boolean;
}

type ConnectionListener = (this: Http2Server, socket: Socket) => void;

export function guardConnections(http2Servers: readonly Http2Server[], options: ConnectionGuardOptions): ConnectionGuard {
  const { limiter, counts, log } = options;
  const sessions = new Map<Http2Session, TrackedSession>();
  let draining = false;
  /** The socket whose 'connection' handlers run now: node:http2 makes a plaintext session inside them. */
  let accepting: Socket | undefined;

  const closeSocketSoon = (tracked: TrackedSession): void => {
    // After the frames already queued (the GOAWAY, the last trailers) are written.
    setImmediate(() => tracked.socket?.destroySoon());
  };

  const cutOff = (session: Http2Session, tracked: TrackedSession, exceeded: LimitExceeded): void => {
    if (tracked.cutOff || session.destroyed) {
      return;
    }
    tracked.cutOff = true;
    counts.sessionClosed(exceeded.limit);
    if (exceeded.newBan) {
      log.warn(
        { peer: tracked.peer, limitedAs: tracked.limitKey, limit: exceeded.limit, perSecond: exceeded.perSecond, banMs: limiter?.limits.banMs },
        "client address over its stream limit: connection closed, new connections from it refused for the ban period",
      );
    }
    session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
    session.destroy();
  };

  const onTinyDataChunks = (tracked: TrackedSession, received: TinyDataChunks): void => {
    log.warn(
      { peer: tracked.peer, dataChunks: received.chunks, dataBytes: received.bytes, minAverageBytes: MIN_AVERAGE_DATA_BYTES },
      "request stream reset (ENHANCE_YOUR_CALM): its DATA came in pieces too small to hold",
    );
  };

  const onStream = (session: Http2Session, tracked: TrackedSession, stream: ServerHttp2Stream): void => {
    tracked.openStreams++;
    guardDataChunks(stream, tracked, onTinyDataChunks);
    // `on`: a stream emits 'close' once, and `once` would wrap the listener for every stream.
    stream.on("close", () => {
      tracked.openStreams--;
      // A reset by the client; not the streams of a connection going away as a whole.
      if (limiter !== undefined && !draining && stream.rstCode !== constants.NGHTTP2_NO_ERROR && !session.destroyed) {
        const exceeded = limiter.streamCancelled(tracked.limitKey);
        if (exceeded !== undefined) {
          cutOff(session, tracked, exceeded);
        }
      }
      if (draining && tracked.openStreams === 0) {
        closeSocketSoon(tracked);
      }
    });
    if (limiter !== undefined) {
      const exceeded = limiter.streamOpened(tracked.limitKey);
      if (exceeded !== undefined) {
        cutOff(session, tracked, exceeded);
      }
    }
  };

  const onSession = (session: Http2Session): void => {
    const socket = accepting;
    const peer = peerAddress(socket?.remoteAddress ?? session.socket?.remoteAddress);
    const tracked: TrackedSession = {
      peer,
      limitKey: peerLimitKey(peer, options.ipv6PrefixBits),
      socket,
      openStreams: 0,
      cutOff: false,
    };
    sessions.set(session, tracked);
    limiter?.sessionOpened(tracked.limitKey);
    session.on("stream", (stream: ServerHttp2Stream) => onStream(session, tracked, stream));
    session.once("close", () => {
      sessions.delete(session);
      limiter?.sessionClosed(tracked.limitKey);
    });
  };

  for (const http2Server of http2Servers) {
    const handlers = http2Server.listeners("connection") as ConnectionListener[];
    http2Server.removeAllListeners("connection");
    http2Server.on("connection", function (this: Http2Server, socket: Socket) {
      if (limiter !== undefined && !limiter.admitsConnection(peerLimitKey(peerAddress(socket.remoteAddress), options.ipv6PrefixBits))) {
        counts.connectionRefused();
        socket.destroy();
        return;
      }
      accepting = socket;
      try {
        for (const handler of handlers) {
          handler.call(this, socket);
        }
      } finally {
        accepting = undefined;
      }
    });
    http2Server.on("session", onSession);
  }

  return {
    closeWhenIdle() {
      draining = true;
      for (const tracked of sessions.values()) {
        if (tracked.openStreams === 0) {
          closeSocketSoon(tracked);
        }
      }
    },
  };
}
