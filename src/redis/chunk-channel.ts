import { type Socket, connect as connectTcp, isIP } from "node:net";
import { connect as connectTls } from "node:tls";
import { ReplyError } from "ioredis";
import { Code, RegistryError } from "../errors/index.js";
import type { SentinelAddress } from "./redis-sentinel-url.js";
import type { RedisEndpoint } from "./redis-url.js";

/**
 * Where the primary is now (Sentinel mode: the one the command connection reached and checked is a
 * primary); throws while none is known. Without it, the channel connects to the endpoint's host and port.
 */
export type PrimaryLocator = () => SentinelAddress;

/** Error replies of a node that cannot take writes now: a replica after a failover, or one still loading. */
const NODE_NOT_A_PRIMARY = /^(READONLY|MASTERDOWN|LOADING)\b/;
/** What Redis answers AUTH when it has no password set (ioredis goes on in that case). */
const AUTH_WITHOUT_PASSWORD = /no password is set|called without any password configured/i;

/**
 * Why the commands waiting on the channel failed when its connection made no progress for the timeout.
 * Not ioredis's "Command timed out": RedisConnection.call drops the command connection on that one, and a
 * stalled chunk connection says nothing about the command connection (it may only be a slow link).
 */
export function chunkConnectionStalled(timeoutMs: number, linkAllowanceMs = 0, commandBytes = 0): string {
  const stalledMs = timeoutMs + linkAllowanceMs;
  return linkAllowanceMs === 0
    ? `the chunk connection made no progress for ${stalledMs} ms`
    : `the chunk connection made no progress for ${stalledMs} ms (the timeout of ${timeoutMs} ms, plus ${linkAllowanceMs} ms for the command's ${commandBytes} bytes to reach Redis at ${MIN_LINK_BYTES_PER_SECOND / 1024} KiB/s)`;
}

/**
 * The slowest link to Redis the chunk connection waits for. A command the kernel took whole may still be
 * in its socket buffers, on the way to Redis, which answers only once it has the last byte; Node shows
 * nothing of those bytes leaving. So once a command is written, its reply is awaited for the timeout plus
 * the time its bytes take at this rate (2 MiB: 8 s): a slower link fails big writes as a stalled one.
 */
export const MIN_LINK_BYTES_PER_SECOND = 256 * 1024;

/** How long a written command's bytes may take to reach Redis over the slowest link waited for. */
function linkAllowanceMs(commandBytes: number): number {
  return Math.floor((commandBytes * 1000) / MIN_LINK_BYTES_PER_SECOND);
}
/** Bytes one socket read lands in (plain TCP: always the same buffer, so reads make no garbage). */
const READ_BUFFER_BYTES = 256 * 1024;
const CRLF = Buffer.from("\r\n", "latin1");

/** Receives a bulk reply's bytes in order; `piece` is valid only during the call (copy what you keep). */
export type BulkSink = (piece: Uint8Array) => void;

interface PendingReply {
  /** Where a bulk reply's bytes go; without it they are collected into a new Buffer. */
  readonly sink: BulkSink | undefined;
  /** Called at once (before later replies are parsed) when the reply is not a bulk: nil or an error. */
  readonly onNoBulk?: (() => void) | undefined;
  readonly resolve: (value: ChunkReply) => void;
  readonly reject: (error: Error) => void;
  /** When the kernel took the command's last byte (performance.now()); 0 before. */
  writtenAt: number;
  /** The command's size on the wire. */
  readonly bytes: number;
}

/** A reply as this channel understands it: status or integer, a bulk's length (sink) or bytes, or nil. */
export type ChunkReply = string | number | Buffer | null;

/** What the registry needs of the connection(s) carrying version data: one ChunkChannel, or one per node of a Redis Cluster. */
export interface ChunkStore {
  setChunk(key: string, segments: readonly Uint8Array[], ttlMs: number): Promise<void>;
  getInto(key: string, sink: BulkSink, onNoBulk?: () => void): Promise<number | null>;
  /**
   * The connection a command for `key` would go to now (nothing is sent or consumed). Replies come in
   * order on one connection only: GETs feeding one sink are pipelined only while this stays the same.
   */
  connectionFor(key: string): unknown;
  getBuffer(key: string): Promise<Buffer | null>;
  /**
   * The command or subscriber connection to `node` (a Cluster node's `host:port`; undefined: the one
   * Redis, or the primary) got no reply for `silentMs`: Redis is taken for hung. A chunk connection to
   * it on which commands wait and no byte came for as long is dropped too, failing them with `reason`,
   * rather than waiting out its own bound (longer for big writes, see MIN_LINK_BYTES_PER_SECOND).
   */
  abandonIfSilent(silentMs: number, reason: string, node?: string): void;
  close(): void;
}

/** ASKING: the next command is for a slot this Cluster node is importing (an ASK redirection). */
const ASKING = Buffer.from("*1\r\n$6\r\nASKING\r\n", "latin1");

const enum ParseState {
  Line,
  Body,
  BodyEnd,
}

/**
 * A RESP connection of its own for the bytes of version data, beside ioredis (which keeps everything
 * else): ioredis copies every Buffer argument into one new Buffer per command (Command.toWritable's
 * MixedBuffers) and collects every bulk reply with Buffer.concat of its socket reads, so each 2 MiB
 * chunk cost two 2 MiB throwaway Buffers, and V8's collections of them were most of an instance's CPU.
 * Here a SET goes out as header, the caller's Buffers and CRLF in one corked write (writev: no copy),
 * and a GET's bytes are handed from the socket's read buffer, one reused buffer on plain TCP, to a
 * sink that copies them where they belong (the cache entry). Replies come in command order (RESP).
 * Fail-fast like the ioredis connections: a lost connection fails what waits on it and the next
 * command connects again. The timeout bounds a lack of progress, not a command's age: the connection
 * is dropped when commands wait and nothing moved on it for `timeoutMs`: no byte received, no write
 * completed and the kernel's backlog of our writes did not shrink. A new command is no progress (a
 * peer that takes bytes and never answers must not be kept alive by more commands: the socket's own
 * inactivity timer restarts at every write, so it is not used). Commands queued behind others (32
 * readers, each a few GETs of 2 MiB ahead, on a slow link) wait as long as replies keep coming. Once
 * the kernel took the oldest command whole, its bytes may still be crossing a slow link: its reply is
 * awaited for the timeout plus their time at MIN_LINK_BYTES_PER_SECOND. When the command connection
 * finds Redis hung, a chunk connection just as silent is dropped at once (abandonIfSilent).
 */
export class ChunkChannel implements ChunkStore {
  private socket: Socket | undefined = undefined;
  private readonly pending: PendingReply[] = [];
  private readonly readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
  private state = ParseState.Line;
  private line = "";
  private bodyLeft = 0;
  private body: Buffer | undefined = undefined;
  private bodyFilled = 0;
  private crlfLeft = 0;
  /** What the current bulk reply's sink threw. */
  private sinkError: Error | undefined = undefined;
  private closed = false;
  /** When a reply's byte last came (or the first command of a busy spell was sent), performance.now(). */
  private receivedAt = 0;
  /** When the kernel last took some of our bytes while the oldest command was not fully written. */
  private writtenAt = 0;
  /** The socket's backlog of bytes not yet taken by the kernel, at the last check. */
  private lastBacklog = 0;
  private watchdog: NodeJS.Timeout | undefined = undefined;
  /** With a locator: the primary the socket was opened to (`host:port`). */
  private connectedTo = "";

  constructor(
    private readonly endpoint: RedisEndpoint,
    private readonly timeoutMs: number,
    private readonly locatePrimary?: PrimaryLocator,
  ) {}

  /** SET key <value made of `segments`> PX ttlMs. The segments must not change until this resolves. */
  async setChunk(key: string, segments: readonly Uint8Array[], ttlMs: number, asking = false): Promise<void> {
    const length = segments.reduce((sum, segment) => sum + segment.byteLength, 0);
    const ttl = String(ttlMs);
    const head = `*5\r\n$3\r\nSET\r\n$${Buffer.byteLength(key)}\r\n${key}\r\n$${length}\r\n`;
    const tail = `\r\n$2\r\nPX\r\n$${ttl.length}\r\n${ttl}\r\n`;
    await this.send([Buffer.from(head), ...segments, Buffer.from(tail, "latin1")], undefined, undefined, asking);
  }

  /**
   * GET key, its bytes handed to `sink` as they arrive: the value's length, or null without the key.
   * `onNoBulk` runs as soon as the reply turns out to be nil or an error, before any later reply is
   * parsed (the promise settles only after those already parsed in the same read), so that a caller
   * with GETs pipelined can stop its sinks in time.
   */
  async getInto(key: string, sink: BulkSink, onNoBulk?: () => void, asking = false): Promise<number | null> {
    const reply = await this.send([Buffer.from(`*2\r\n$3\r\nGET\r\n$${Buffer.byteLength(key)}\r\n${key}\r\n`)], sink, onNoBulk, asking);
    return reply as number | null;
  }

  /** GET key into a Buffer of its own (exactly its length: one copy, no concatenation). */
  connectionFor(): unknown {
    return this; // one connection for every key
  }

  async getBuffer(key: string, asking = false): Promise<Buffer | null> {
    return (await this.send([Buffer.from(`*2\r\n$3\r\nGET\r\n$${Buffer.byteLength(key)}\r\n${key}\r\n`)], undefined, undefined, asking)) as Buffer | null;
  }

  close(): void {
    this.closed = true;
    this.drop(new Error("Connection is closed."));
  }

  abandonIfSilent(silentMs: number, reason: string): void {
    // Bytes the kernel takes are no sign of life here: a stopped Redis's kernel takes them too.
    if (this.socket !== undefined && this.pending.length > 0 && performance.now() - this.receivedAt >= silentMs) {
      this.drop(new Error(reason));
    }
  }

  private send(parts: readonly Uint8Array[], sink: BulkSink | undefined, onNoBulk?: () => void, asking = false): Promise<ChunkReply> {
    if (this.closed) {
      return Promise.reject(new Error("Connection is closed."));
    }
    let socket: Socket;
    try {
      socket = this.currentSocket();
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return new Promise<ChunkReply>((resolve, reject) => {
      if (this.pending.length === 0) {
        this.receivedAt = performance.now();
      }
      // ASKING's +OK is dropped; an error reply to it fails the command after it.
      let askingFailed: Error | undefined;
      const settle = (value: ChunkReply): void => (askingFailed === undefined ? resolve(value) : reject(askingFailed));
      const bytes = parts.reduce((sum, part) => sum + part.byteLength, 0);
      const reply: PendingReply = { sink, onNoBulk, resolve: settle, reject, writtenAt: 0, bytes };
      socket.cork();
      if (asking) {
        this.pending.push({ sink: undefined, writtenAt: 0, bytes: ASKING.byteLength, resolve: () => undefined, reject: (error) => (askingFailed = error) });
        socket.write(ASKING);
      }
      this.pending.push(reply);
      for (let i = 0; i < parts.length - 1; i++) {
        socket.write(parts[i] as Uint8Array);
      }
      socket.write(parts[parts.length - 1] as Uint8Array, () => this.written(reply));
      socket.uncork();
      this.watchdog ??= setTimeout(this.checkProgress, this.timeoutMs / 4);
    });
  }

  private written(reply: PendingReply): void {
    reply.writtenAt = this.writtenAt = performance.now();
  }

  /** Drops the connection when commands wait and nothing moved for timeoutMs (see the class comment). */
  private readonly checkProgress = (): void => {
    this.watchdog = undefined;
    const socket = this.socket;
    if (socket === undefined || this.pending.length === 0) {
      return;
    }
    const backlog = kernelBacklog(socket);
    const now = performance.now();
    if (backlog < this.lastBacklog) {
      this.writtenAt = now;
    }
    this.lastBacklog = backlog;
    // The oldest command waits for its reply once written (later commands' writes are no news of
    // it), and for the kernel to take its bytes before. Once written, its bytes may still be crossing
    // a slow link (see MIN_LINK_BYTES_PER_SECOND).
    const oldest = this.pending[0] as PendingReply;
    const written = oldest.writtenAt > 0;
    const progressAt = Math.max(this.receivedAt, written ? oldest.writtenAt : this.writtenAt);
    const allowanceMs = written ? linkAllowanceMs(oldest.bytes) : 0;
    if (now - progressAt >= this.timeoutMs + allowanceMs) {
      this.drop(new Error(chunkConnectionStalled(this.timeoutMs, allowanceMs, oldest.bytes)));
      return;
    }
    this.watchdog = setTimeout(this.checkProgress, this.timeoutMs / 4);
  };

  /**
   * The open socket, or a new one. With a locator, a socket to a node that is no longer the primary
   * (a failover that left the old one up: it would still answer GETs, as a replica) is dropped first.
   */
  private currentSocket(): Socket {
    if (this.locatePrimary === undefined) {
      return this.socket ?? this.open(this.endpoint);
    }
    const primary = this.locatePrimary();
    const address = `${primary.host}:${primary.port}`;
    if (this.socket !== undefined && this.connectedTo !== address) {
      this.drop(new Error(`the primary moved to ${address}`));
    }
    this.connectedTo = address;
    // TLS: the certificate is checked against this host; an IP address (what a socket's peer is) is not sent as SNI.
    return this.socket ?? this.open(primary, isIP(primary.host) === 0 ? primary.host : undefined);
  }

  private open({ host, port }: SentinelAddress, servername: string | undefined = host): Socket {
    const { tls, username, password, db } = this.endpoint;
    const socket = tls
      ? connectTls({ host, port, servername })
      : connectTcp({
          host,
          port,
          onread: {
            buffer: this.readBuffer,
            callback: (count) => {
              this.parse(this.readBuffer.subarray(0, count));
              return true;
            },
          },
        });
    if (tls) {
      socket.on("data", (data: Buffer) => this.parse(data));
    }
    socket.setNoDelay(true);
    const fail = (error: Error): void => {
      if (this.socket === socket) {
        this.drop(error);
      }
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new Error("Connection is closed.")));
    this.socket = socket;
    this.lastBacklog = 0;
    // Connecting counts against the timeout from now.
    this.receivedAt = performance.now();
    this.state = ParseState.Line;
    this.line = "";
    this.sinkError = undefined;
    // Sent ahead of the first command; their replies are checked like any other.
    if (password !== undefined) {
      this.handshake(socket, username === undefined ? ["AUTH", password] : ["AUTH", username, password]);
    }
    if (db !== 0) {
      this.handshake(socket, ["SELECT", String(db)]);
    }
    return socket;
  }

  private handshake(socket: Socket, words: readonly string[]): void {
    const encoded = words.map((word) => `$${Buffer.byteLength(word)}\r\n${word}\r\n`).join("");
    const command = `*${words.length}\r\n${encoded}`;
    const reply: PendingReply = {
      sink: undefined,
      writtenAt: 0,
      bytes: Buffer.byteLength(command),
      resolve: () => {},
      // A refused AUTH or SELECT leaves the connection unusable: every command waiting fails with it;
      // except AUTH to a Redis without a password, which ioredis also lets pass (with a warning of its own).
      reject: (error) => {
        if (!(words[0] === "AUTH" && AUTH_WITHOUT_PASSWORD.test(error.message))) {
          this.drop(error);
        }
      },
    };
    this.pending.push(reply);
    socket.write(command, () => this.written(reply));
  }

  /** Forgets the connection: every command waiting on it fails with `error`. */
  private drop(error: Error): void {
    const socket = this.socket;
    this.socket = undefined;
    socket?.destroy();
    clearTimeout(this.watchdog);
    this.watchdog = undefined;
    this.body = undefined;
    for (const reply of this.pending.splice(0)) {
      reply.reject(error);
    }
  }

  private parse(data: Buffer): void {
    this.receivedAt = performance.now();
    let offset = 0;
    while (offset < data.byteLength && this.socket !== undefined) {
      if (this.state === ParseState.Line) {
        const end = data.indexOf(10, offset);
        if (end === -1) {
          this.line += data.toString("latin1", offset);
          return;
        }
        this.line += data.toString("latin1", offset, end);
        offset = end + 1;
        const line = this.line.endsWith("\r") ? this.line.slice(0, -1) : this.line;
        this.line = "";
        this.onLine(line);
      } else if (this.state === ParseState.Body) {
        const taken = Math.min(this.bodyLeft, data.byteLength - offset);
        const piece = data.subarray(offset, offset + taken);
        const sink = this.pending[0]?.sink;
        if (this.body !== undefined) {
          this.body.set(piece, this.bodyFilled);
          this.bodyFilled += taken;
        } else if (sink !== undefined && this.sinkError === undefined) {
          try {
            sink(piece);
          } catch (error) {
            // Not thrown out of the socket's read callback: the reply is read to its end, then its command
            // fails; with INTERNAL, since the failure is ours, not Redis's (not "Redis is unreachable").
            this.sinkError =
              error instanceof RegistryError
                ? error
                : new RegistryError(Code.INTERNAL, `storing the data read from Redis failed: ${error instanceof Error ? error.message : String(error)}`, {
                    cause: error,
                  });
          }
        }
        offset += taken;
        this.bodyLeft -= taken;
        if (this.bodyLeft === 0) {
          this.state = ParseState.BodyEnd;
          this.crlfLeft = CRLF.byteLength;
        }
      } else {
        const taken = Math.min(this.crlfLeft, data.byteLength - offset);
        offset += taken;
        this.crlfLeft -= taken;
        if (this.crlfLeft === 0) {
          this.state = ParseState.Line;
          const body = this.body;
          const sinkError = this.sinkError;
          this.body = undefined;
          this.sinkError = undefined;
          this.settle(sinkError ?? body ?? this.bodyFilled);
        }
      }
    }
  }

  private onLine(line: string): void {
    const rest = line.slice(1);
    switch (line[0]) {
      case "+":
        this.settle(rest);
        return;
      case ":":
        this.settle(Number(rest));
        return;
      case "-":
        this.settle(new ReplyError(rest) as Error);
        if (NODE_NOT_A_PRIMARY.test(rest) && this.socket !== undefined) {
          // A failover moved the primary (the address now names another node, as ioredis's
          // reconnectOnError assumes): the next command connects again rather than keep asking a replica.
          this.drop(new ReplyError(rest) as Error);
        }
        return;
      case "$": {
        const length = Number(rest);
        if (length < 0) {
          this.settle(null);
          return;
        }
        const sink = this.pending[0]?.sink;
        this.body = sink === undefined ? Buffer.allocUnsafe(length) : undefined;
        this.bodyFilled = sink === undefined ? 0 : length;
        this.bodyLeft = length;
        this.state = ParseState.Body;
        if (length === 0) {
          this.state = ParseState.BodyEnd;
          this.crlfLeft = CRLF.byteLength;
        }
        return;
      }
      default:
        this.drop(new Error(`unexpected reply from Redis: ${JSON.stringify(line.slice(0, 40))}`));
    }
  }

  private settle(value: ChunkReply | Error): void {
    const reply = this.pending.shift();
    if (reply === undefined) {
      this.drop(new Error("a reply from Redis without a command"));
      return;
    }
    if (value === null || value instanceof Error) {
      reply.onNoBulk?.();
    }
    if (value instanceof Error) {
      reply.reject(value);
    } else {
      reply.resolve(value);
    }
  }
}

/**
 * Bytes of our writes the kernel has not taken yet: libuv's write queue (what Node's own socket
 * timeout watches, an undocumented but long-standing field of the handle) plus what Node still holds.
 */
function kernelBacklog(socket: Socket): number {
  const handle = (socket as unknown as { _handle?: { writeQueueSize?: unknown } | null })._handle;
  const queued = typeof handle?.writeQueueSize === "number" ? handle.writeQueueSize : 0;
  return queued + socket.writableLength;
}
