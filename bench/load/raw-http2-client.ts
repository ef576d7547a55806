/**
 * A minimal HTTP/2 client over a raw TCP socket: the bench's cheapest honest client, for
 * RetrieveVersionData (`fetch`) and for small unary calls (`unary`). node:http2 spends ~1 CPU-s per
 * GB receiving (an event per 16 KiB DATA frame) and about as much CPU per small call as the server
 * it measures; on a 2-core box either capped the bench. A Go load generator costs the box little
 * per call, and this one comes closer to it. It parses frames straight out of large socket reads into
 * one reused buffer and hashes the data where it lies, yet checks everything a real client would:
 * the gRPC message framing (GrpcFrameHasher, GrpcMessageCounter), the response's :status and
 * content-type, the trailers' grpc-status, every byte of a fetch (its SHA-256 for the caller to
 * compare, or a comparison with the expected bytes: ExpectedBytes), RST_STREAM and GOAWAY.
 *
 * What it sends: the preface; SETTINGS (no push, a large stream window, the largest frame size); a
 * connection WINDOW_UPDATE to the same window; per call one HEADERS frame (HPACK as real clients
 * encode: HpackRequestEncoder) and the request in DATA frames; WINDOW_UPDATEs as data is consumed.
 * Calls are sequential.
 */
import { type Socket, connect } from "node:net";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { sharedNow } from "../support/clock.js";
import type { FetchedData } from "../support/bench-client.js";
import { GrpcStatusError } from "./grpc-call-status.js";
import type { ExpectedBytes } from "./expected-bytes.js";
import { GrpcFrameHasher } from "./grpc-frame-hasher.js";
import { GrpcMessageCounter } from "./grpc-message-counter.js";
import { type HeaderField, HpackDecoder, HpackRequestEncoder } from "./hpack-decoder.js";
import { grpcFrame } from "./small-requests.js";

const DATA_PATH = "/cogmentAPI.ModelRegistrySP/RetrieveVersionData";
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const FRAME_HEADER_BYTES = 9;
const DEFAULT_WINDOW = 65_535;
const MAX_FRAME_SIZE = 16_777_215;
/** The largest frame every peer accepts (SETTINGS_MAX_FRAME_SIZE's initial value). */
const SENT_FRAME_BYTES = 16_384;
/** A non-DATA frame larger than this is refused (the reader buffers those whole). */
const MAX_CONTROL_FRAME = 1 << 20;
const READ_BUFFER_BYTES = 1 << 20;

const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PUSH_PROMISE = 0x5;
const PING = 0x6;
const GOAWAY = 0x7;
const WINDOW_UPDATE = 0x8;
const CONTINUATION = 0x9;

const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY_FLAG = 0x20;

const SETTINGS_HEADER_TABLE_SIZE = 0x1;
const SETTINGS_ENABLE_PUSH = 0x2;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
const SETTINGS_MAX_FRAME_SIZE = 0x5;

const CANCEL = 0x8;

/** Where a call's response body goes, and whether it ended between two messages. */
interface ResponseBody {
  push(piece: Uint8Array): void;
  readonly atBoundary: boolean;
}

interface Call {
  readonly streamId: number;
  readonly body: ResponseBody;
  readonly onChunk: ((length: number, at: number) => void) | undefined;
  /** The call ended with grpc-status 0 between two messages: resolves its promise (or rejects it). */
  readonly complete: (call: Call) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout | undefined;
  responseSeen: boolean;
  status: string | undefined;
  message: string;
  lastByteAt: number;
  /** Data received on the stream since its last WINDOW_UPDATE. */
  unacknowledged: number;
}

/** What fetch and unary hand to start: the call's own parts, and its deadline (shared-clock ms). */
type CallRequest = Pick<Call, "body" | "onChunk" | "complete" | "reject"> & { readonly deadline: number | undefined };

type ParseState = "header" | "pad-length" | "data" | "data-padding" | "payload";

export class RawHttp2Client {
  private readonly socket: Socket;
  private readonly connected: Promise<void>;
  private readonly hpack = new HpackDecoder();
  private readonly requestHeaders = new HpackRequestEncoder();
  private readonly authority: string;
  private nextStreamId = 1;
  private call: Call | undefined;
  private closedWith: Error | undefined;
  private connectionUnacknowledged = 0;

  private state: ParseState = "header";
  private readonly frameHeader = Buffer.alloc(FRAME_HEADER_BYTES);
  private frameHeaderFilled = 0;
  private frameType = 0;
  private frameFlags = 0;
  private frameStream = 0;
  /** Payload bytes of the current frame still to come (DATA: data then padding). */
  private frameLeft = 0;
  private dataLeft = 0;
  private payload: Buffer = Buffer.alloc(0);
  private payloadFilled = 0;
  /** A header block waiting for its CONTINUATION frames. */
  private headerBlock: { streamId: number; endStream: boolean; parts: Buffer[] } | undefined;

  /** Received DATA frames and their payload bytes (padding included): the server's frame sizes. */
  dataFrames = 0;
  dataFrameBytes = 0;

  /** `windowBytes`: the HTTP/2 receive window, per stream and for the connection. */
  constructor(
    address: string,
    private readonly windowBytes: number,
  ) {
    const colon = address.lastIndexOf(":");
    this.authority = address;
    const readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    this.socket = connect({
      host: address.slice(0, colon),
      port: Number(address.slice(colon + 1)),
      noDelay: true,
      onread: {
        buffer: readBuffer,
        callback: (count) => {
          this.received(readBuffer.subarray(0, count));
          return true;
        },
      },
    });
    this.connected = new Promise((resolve, reject) => {
      this.socket.once("connect", () => resolve());
      this.socket.once("error", reject);
    });
    this.connected.catch(() => {});
    this.socket.on("error", (error) => this.fail(error));
    this.socket.on("close", () => this.fail(new GrpcStatusError(14, "connection closed (bench raw client)")));
    const settings = Buffer.alloc(18);
    [
      [SETTINGS_ENABLE_PUSH, 0],
      [SETTINGS_INITIAL_WINDOW_SIZE, windowBytes],
      [SETTINGS_MAX_FRAME_SIZE, MAX_FRAME_SIZE],
    ].forEach(([id, value], index) => {
      settings.writeUInt16BE(id as number, index * 6);
      settings.writeUInt32BE(value as number, index * 6 + 2);
    });
    const frames = [PREFACE, frame(SETTINGS, 0, 0, settings)];
    if (windowBytes > DEFAULT_WINDOW) {
      frames.push(windowUpdate(0, windowBytes - DEFAULT_WINDOW));
    }
    this.socket.write(Buffer.concat(frames));
  }

  close(): void {
    this.socket.destroy();
  }

  /**
   * One RetrieveVersionData call. With `expected`, every data byte is compared with the expected ones
   * (FetchedData.matchedExpected) instead of hashed.
   */
  fetch(
    modelId: string,
    versionNumber: number,
    onChunk?: (length: number, at: number) => void,
    deadline?: number,
    expected?: ExpectedBytes,
  ): Promise<FetchedData> {
    const request = new BinaryWriter().tag(1, WireType.LengthDelimited).string(modelId).tag(2, WireType.Varint).int32(versionNumber).finish();
    const hasher = new GrpcFrameHasher(expected === undefined ? undefined : (piece) => expected.check(piece));
    return new Promise<FetchedData>((resolve, reject) => {
      const complete = (call: Call): void => {
        const checked = expected === undefined ? { hashBase64: hasher.digestBase64() } : { hashBase64: "", matchedExpected: expected.complete };
        resolve({ bytes: hasher.dataBytes, lastByteAt: call.lastByteAt, ...checked });
      };
      this.start(DATA_PATH, grpcFrame(request), { body: hasher, onChunk, deadline, complete, reject });
    });
  }

  /**
   * One unary call of `path` with `request` (whole gRPC messages, each with its 5-byte prefix);
   * resolves with the reply body's byte count once it ended with grpc-status 0 and at least one
   * whole message. The reply is not decoded.
   */
  unary(path: string, request: Buffer, timeoutMs: number): Promise<number> {
    const counter = new GrpcMessageCounter();
    return new Promise<number>((resolve, reject) => {
      const complete = (): void => {
        if (counter.messages === 0) {
          reject(new GrpcStatusError(13, "OK without a reply message"));
        } else {
          resolve(counter.bytes);
        }
      };
      this.start(path, request, { body: counter, onChunk: undefined, deadline: sharedNow() + timeoutMs, complete, reject });
    });
  }

  private start(
    path: string,
    request: Buffer,
    call: CallRequest,
  ): void {
    this.connected.then(
      () => this.send(path, request, call),
      (error: unknown) => call.reject(error instanceof Error ? error : new Error(String(error))),
    );
  }

  private send(
    path: string,
    request: Buffer,
    { body, onChunk, complete, reject, deadline }: CallRequest,
  ): void {
    if (this.closedWith !== undefined) {
      reject(this.closedWith);
      return;
    }
    if (this.call !== undefined) {
      reject(new Error("the raw client makes one call at a time"));
      return;
    }
    if (request.byteLength > DEFAULT_WINDOW) {
      reject(new Error(`a ${request.byteLength}-byte request: the raw client sends at most one initial window (${DEFAULT_WINDOW} bytes)`));
      return;
    }
    const streamId = this.nextStreamId;
    this.nextStreamId += 2;
    const timer =
      deadline === undefined
        ? undefined
        : setTimeout(() => {
            this.socket.write(frame(RST_STREAM, 0, streamId, uint32(CANCEL)));
            this.endCall(new GrpcStatusError(4, "deadline exceeded (bench raw client)"));
          }, Math.max(0, deadline - sharedNow()));
    this.call = {
      streamId,
      body,
      onChunk,
      complete,
      reject,
      timer,
      responseSeen: false,
      status: undefined,
      message: "",
      lastByteAt: sharedNow(),
      unacknowledged: 0,
    };
    const headerBlock = this.requestHeaders.encode([
      [":method", "POST"],
      [":scheme", "http"],
      [":path", path],
      [":authority", this.authority],
      ["content-type", "application/grpc"],
      ["te", "trailers"],
    ]);
    const frames = [frame(HEADERS, END_HEADERS, streamId, headerBlock)];
    for (let offset = 0; offset < request.byteLength || offset === 0; offset += SENT_FRAME_BYTES) {
      const end = Math.min(request.byteLength, offset + SENT_FRAME_BYTES);
      frames.push(frame(DATA, end === request.byteLength ? END_STREAM : 0, streamId, request.subarray(offset, end)));
    }
    this.socket.write(Buffer.concat(frames));
  }

  /** One socket read: frames parsed in place (the buffer is reused by the next read). */
  private received(bytes: Buffer): void {
    try {
      this.parse(bytes);
      this.acknowledgeData();
    } catch (error) {
      this.socket.destroy();
      this.fail(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private parse(bytes: Buffer): void {
    let offset = 0;
    while (offset < bytes.byteLength) {
      switch (this.state) {
        case "header": {
          const take = Math.min(FRAME_HEADER_BYTES - this.frameHeaderFilled, bytes.byteLength - offset);
          bytes.copy(this.frameHeader, this.frameHeaderFilled, offset, offset + take);
          this.frameHeaderFilled += take;
          offset += take;
          if (this.frameHeaderFilled === FRAME_HEADER_BYTES) {
            this.frameHeaderFilled = 0;
            this.startFrame();
          }
          break;
        }
        case "pad-length": {
          const padding = bytes[offset++] as number;
          this.frameLeft -= 1;
          if (padding > this.frameLeft) {
            throw new Error("HTTP/2: padding longer than its DATA frame");
          }
          this.dataLeft = this.frameLeft - padding;
          this.state = this.dataLeft > 0 ? "data" : this.afterData();
          break;
        }
        case "data": {
          const take = Math.min(this.dataLeft, bytes.byteLength - offset);
          this.data(bytes.subarray(offset, offset + take));
          offset += take;
          this.dataLeft -= take;
          this.frameLeft -= take;
          if (this.dataLeft === 0) {
            this.state = this.afterData();
          }
          break;
        }
        case "data-padding": {
          const take = Math.min(this.frameLeft, bytes.byteLength - offset);
          offset += take;
          this.frameLeft -= take;
          if (this.frameLeft === 0) {
            this.state = this.endDataFrame();
          }
          break;
        }
        case "payload": {
          const take = Math.min(this.payload.byteLength - this.payloadFilled, bytes.byteLength - offset);
          bytes.copy(this.payload, this.payloadFilled, offset, offset + take);
          this.payloadFilled += take;
          offset += take;
          if (this.payloadFilled === this.payload.byteLength) {
            this.state = "header";
            this.controlFrame(this.payload);
          }
          break;
        }
      }
    }
  }

  private startFrame(): void {
    const header = this.frameHeader;
    const length = header.readUIntBE(0, 3);
    this.frameType = header[3] as number;
    this.frameFlags = header[4] as number;
    this.frameStream = header.readUInt32BE(5) & 0x7fffffff;
    if (this.headerBlock !== undefined && this.frameType !== CONTINUATION) {
      throw new Error("HTTP/2: a header block was interrupted by another frame");
    }
    if (this.frameType === DATA) {
      this.dataFrames += 1;
      this.dataFrameBytes += length;
      this.connectionUnacknowledged += length;
      if (this.call !== undefined && this.frameStream === this.call.streamId) {
        this.call.unacknowledged += length;
      }
      this.frameLeft = length;
      if (this.frameFlags & PADDED) {
        if (length === 0) {
          throw new Error("HTTP/2: padded DATA frame without its pad length");
        }
        this.state = "pad-length";
      } else {
        this.dataLeft = length;
        this.state = length > 0 ? "data" : this.endDataFrame();
      }
      return;
    }
    if (length > MAX_CONTROL_FRAME) {
      throw new Error(`HTTP/2: a ${length}-byte frame of type ${this.frameType}`);
    }
    this.payload = Buffer.allocUnsafe(length);
    this.payloadFilled = 0;
    this.state = "payload";
    if (length === 0) {
      this.state = "header";
      this.controlFrame(this.payload);
    }
  }

  private data(piece: Buffer): void {
    const call = this.call;
    if (call === undefined || this.frameStream !== call.streamId) {
      return; // a stream already given up (deadline): its data is dropped, still counted for the window
    }
    if (!call.responseSeen) {
      throw new Error("HTTP/2: DATA before the response headers");
    }
    call.body.push(piece);
    call.lastByteAt = sharedNow();
    call.onChunk?.(piece.byteLength, call.lastByteAt);
  }

  private afterData(): ParseState {
    return this.frameLeft > 0 ? "data-padding" : this.endDataFrame();
  }

  private endDataFrame(): ParseState {
    const call = this.call;
    if (this.frameFlags & END_STREAM && call !== undefined && this.frameStream === call.streamId) {
      this.finishCall(call);
    }
    return "header";
  }

  private controlFrame(payload: Buffer): void {
    switch (this.frameType) {
      case HEADERS: {
        let start = 0;
        let end = payload.byteLength;
        if (this.frameFlags & PADDED) {
          start += 1;
          end -= payload[0] ?? 0;
        }
        if (this.frameFlags & PRIORITY_FLAG) {
          start += 5;
        }
        if (start > end) {
          throw new Error("HTTP/2: HEADERS padding longer than its frame");
        }
        this.headerBlock = { streamId: this.frameStream, endStream: (this.frameFlags & END_STREAM) !== 0, parts: [payload.subarray(start, end)] };
        this.endOfHeaderFrame();
        break;
      }
      case CONTINUATION:
        if (this.headerBlock === undefined || this.headerBlock.streamId !== this.frameStream) {
          throw new Error("HTTP/2: CONTINUATION without its HEADERS");
        }
        this.headerBlock.parts.push(payload);
        this.endOfHeaderFrame();
        break;
      case SETTINGS:
        if ((this.frameFlags & ACK) === 0) {
          this.checkHeaderTableSize(payload);
          this.socket.write(frame(SETTINGS, ACK, 0, Buffer.alloc(0)));
        }
        break;
      case PING:
        if ((this.frameFlags & ACK) === 0) {
          this.socket.write(frame(PING, ACK, 0, payload));
        }
        break;
      case RST_STREAM:
        if (this.call !== undefined && this.frameStream === this.call.streamId) {
          this.endCall(new GrpcStatusError(14, `stream reset by the server (HTTP/2 code ${payload.readUInt32BE(0)})`));
        }
        break;
      case GOAWAY: {
        const error = new GrpcStatusError(14, `GOAWAY from the server (HTTP/2 code ${payload.readUInt32BE(4)})`);
        this.closedWith = error;
        if (this.call !== undefined && this.call.streamId > (payload.readUInt32BE(0) & 0x7fffffff)) {
          this.endCall(error);
        }
        break;
      }
      case PUSH_PROMISE:
        throw new Error("HTTP/2: PUSH_PROMISE though push is disabled");
      case WINDOW_UPDATE:
      default:
        break; // requests are far smaller than any window; PRIORITY and unknown types are ignored
    }
  }

  /** The request encoder never outgrows the table the server allows (it does not shrink its own). */
  private checkHeaderTableSize(settings: Buffer): void {
    for (let offset = 0; offset + 6 <= settings.byteLength; offset += 6) {
      if (settings.readUInt16BE(offset) === SETTINGS_HEADER_TABLE_SIZE && settings.readUInt32BE(offset + 2) < this.requestHeaders.tableBudget) {
        throw new Error(`HTTP/2: the server's HPACK table (${settings.readUInt32BE(offset + 2)} bytes) is smaller than the raw client's`);
      }
    }
  }

  private endOfHeaderFrame(): void {
    const block = this.headerBlock;
    if (block === undefined || (this.frameFlags & END_HEADERS) === 0) {
      return;
    }
    this.headerBlock = undefined;
    // Every block goes through the decoder: its dynamic table is the connection's.
    const fields = this.hpack.decode(Buffer.concat(block.parts));
    const call = this.call;
    if (call === undefined || block.streamId !== call.streamId) {
      return;
    }
    if (!call.responseSeen) {
      call.responseSeen = true;
      const status = lookup(fields, ":status");
      const contentType = lookup(fields, "content-type") ?? "";
      if (status !== "200" || !contentType.startsWith("application/grpc")) {
        this.endCall(new GrpcStatusError(13, `HTTP status ${String(status)}, content-type "${contentType}"`));
        return;
      }
    }
    const grpcStatus = lookup(fields, "grpc-status");
    if (grpcStatus !== undefined) {
      call.status = grpcStatus;
      call.message = lookup(fields, "grpc-message") ?? "";
    }
    if (block.endStream) {
      this.finishCall(call);
    }
  }

  private finishCall(call: Call): void {
    if (call.status === undefined) {
      this.endCall(new GrpcStatusError(14, "stream ended without a gRPC status"));
    } else if (call.status !== "0") {
      this.endCall(new GrpcStatusError(Number(call.status), decodeURIComponent(call.message)));
    } else if (!call.body.atBoundary) {
      this.endCall(new GrpcStatusError(13, "response ended inside a message"));
    } else {
      this.endCall(undefined);
      call.complete(call);
    }
  }

  private endCall(error: Error | undefined): void {
    const call = this.call;
    if (call === undefined) {
      return;
    }
    this.call = undefined;
    clearTimeout(call.timer);
    if (error !== undefined) {
      call.reject(error);
    }
  }

  /** WINDOW_UPDATEs once half a window was consumed (data is consumed as it is parsed). */
  private acknowledgeData(): void {
    const half = this.windowBytes / 2;
    const updates: Buffer[] = [];
    if (this.connectionUnacknowledged >= half) {
      updates.push(windowUpdate(0, this.connectionUnacknowledged));
      this.connectionUnacknowledged = 0;
    }
    const call = this.call;
    if (call !== undefined && call.unacknowledged >= half) {
      updates.push(windowUpdate(call.streamId, call.unacknowledged));
      call.unacknowledged = 0;
    }
    if (updates.length > 0) {
      this.socket.write(updates.length === 1 ? (updates[0] as Buffer) : Buffer.concat(updates));
    }
  }

  private fail(error: Error): void {
    this.closedWith ??= error;
    this.endCall(error);
  }
}

function lookup(fields: readonly HeaderField[], name: string): string | undefined {
  return fields.find(([fieldName]) => fieldName === name)?.[1];
}

function frame(type: number, flags: number, streamId: number, payload: Uint8Array): Buffer {
  const bytes = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.byteLength);
  bytes.writeUIntBE(payload.byteLength, 0, 3);
  bytes[3] = type;
  bytes[4] = flags;
  bytes.writeUInt32BE(streamId, 5);
  bytes.set(payload, FRAME_HEADER_BYTES);
  return bytes;
}

function windowUpdate(streamId: number, increment: number): Buffer {
  return frame(WINDOW_UPDATE, 0, streamId, uint32(increment));
}

function uint32(value: number): Buffer {
  const bytes = Buffer.allocUnsafe(4);
  bytes.writeUInt32BE(value, 0);
  return bytes;
}
