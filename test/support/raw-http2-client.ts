/**
 * A client that writes HTTP/2 frames itself, for what node:http2's client will not do: a request's
 * DATA cut into frames of a chosen size. It keeps to the flow-control windows the server grants
 * and records the RST_STREAM and GOAWAY codes, HEADERS and DATA it gets back.
 */
import { type Socket, connect } from "node:net";

const FRAME_DATA = 0x0;
const FRAME_HEADERS = 0x1;
const FRAME_RST_STREAM = 0x3;
const FRAME_SETTINGS = 0x4;
const FRAME_GOAWAY = 0x7;
const FRAME_WINDOW_UPDATE = 0x8;
const FLAG_END_STREAM = 0x1;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.byteLength, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** A header field as an HPACK literal without indexing, new name (names and values under 127 bytes). */
function literal(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
}

/** What came back on one stream. */
export interface RawStreamState {
  /** The RST_STREAM code, once received. */
  resetCode: number | undefined;
  /** HEADERS frames received (the response headers, then the trailers). */
  headerFrames: number;
  /** An END_STREAM flag was received. */
  ended: boolean;
  /** DATA bytes received. */
  dataBytes: number;
}

export class RawHttp2Client {
  readonly #socket: Socket;
  readonly #streams = new Map<number, RawStreamState>();
  readonly #streamWindows = new Map<number, number>();
  #connectionWindow = 65_535;
  #initialWindow = 65_535;
  #inbound: Buffer = Buffer.alloc(0);
  #wake: (() => void) | undefined;
  #nextStreamId = 1;
  readonly goawayCodes: number[] = [];
  closed = false;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("data", (data: Buffer) => this.#read(data));
    socket.on("close", () => {
      this.closed = true;
      this.#wakeUp();
    });
    socket.on("error", () => {});
  }

  static async connect(port: number): Promise<RawHttp2Client> {
    const socket = connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const client = new RawHttp2Client(socket);
    socket.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    socket.write(frame(FRAME_SETTINGS, 0, 0, Buffer.alloc(0)));
    return client;
  }

  /** Opens a stream with a gRPC request's headers for `path` (and `extraHeaders`, in order); its id. */
  open(path: string, extraHeaders: readonly (readonly [string, string])[] = []): number {
    const id = this.#nextStreamId;
    this.#nextStreamId += 2;
    this.#streams.set(id, { resetCode: undefined, headerFrames: 0, ended: false, dataBytes: 0 });
    this.#streamWindows.set(id, this.#initialWindow);
    const headers = Buffer.concat([
      literal(":method", "POST"),
      literal(":scheme", "http"),
      literal(":path", path),
      literal(":authority", "127.0.0.1"),
      literal("content-type", "application/grpc"),
      literal("te", "trailers"),
      ...extraHeaders.map(([name, value]) => literal(name, value)),
    ]);
    this.#socket.write(frame(FRAME_HEADERS, FLAG_END_HEADERS, id, headers));
    return id;
  }

  stream(id: number): RawStreamState {
    const state = this.#streams.get(id);
    if (state === undefined) {
      throw new Error(`no stream ${id}`);
    }
    return state;
  }

  /**
   * Sends `bytes` on stream `id` in DATA frames of `frameBytes` (the last one shorter), within the
   * windows; stops early if the stream is reset or the connection closes. END_STREAM with the last
   * frame if `end`. The data bytes sent.
   */
  async send(id: number, bytes: Buffer, frameBytes: number, end: boolean): Promise<number> {
    const state = this.stream(id);
    let sent = 0;
    while (sent < bytes.byteLength) {
      if (state.resetCode !== undefined || this.closed) {
        return sent;
      }
      const batch: Buffer[] = [];
      while (sent < bytes.byteLength && batch.length < 4096) {
        const length = Math.min(frameBytes, bytes.byteLength - sent);
        const window = Math.min(this.#connectionWindow, this.#streamWindows.get(id) ?? 0);
        if (window < length) {
          break;
        }
        const last = sent + length === bytes.byteLength;
        batch.push(frame(FRAME_DATA, last && end ? FLAG_END_STREAM : 0, id, bytes.subarray(sent, sent + length)));
        this.#connectionWindow -= length;
        this.#streamWindows.set(id, (this.#streamWindows.get(id) ?? 0) - length);
        sent += length;
      }
      if (batch.length > 0) {
        if (!this.#socket.write(Buffer.concat(batch))) {
          await new Promise<void>((resolve) => this.#socket.once("drain", resolve));
        }
        // Lets the server's answers (a reset) in between batches.
        await new Promise<void>((resolve) => setImmediate(resolve));
      } else {
        await new Promise<void>((resolve) => (this.#wake = resolve));
      }
    }
    return sent;
  }

  /** Resolves once `done()` holds (checked after each frame the server sends) or the connection closed. */
  async until(done: () => boolean): Promise<void> {
    while (!done() && !this.closed) {
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  close(): void {
    this.#socket.destroy();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #read(data: Buffer): void {
    this.#inbound = this.#inbound.byteLength === 0 ? data : Buffer.concat([this.#inbound, data]);
    while (this.#inbound.byteLength >= 9) {
      const length = this.#inbound.readUIntBE(0, 3);
      if (this.#inbound.byteLength < 9 + length) {
        break;
      }
      const type = this.#inbound[3] as number;
      const flags = this.#inbound[4] as number;
      const id = this.#inbound.readUInt32BE(5) & 0x7fffffff;
      const payload = this.#inbound.subarray(9, 9 + length);
      this.#inbound = this.#inbound.subarray(9 + length);
      this.#frame(type, flags, id, payload);
    }
    this.#wakeUp();
  }

  #frame(type: number, flags: number, id: number, payload: Buffer): void {
    const state = this.#streams.get(id);
    if (type === FRAME_SETTINGS && (flags & FLAG_ACK) === 0) {
      for (let at = 0; at + 6 <= payload.byteLength; at += 6) {
        if (payload.readUInt16BE(at) === SETTINGS_INITIAL_WINDOW_SIZE) {
          const value = payload.readUInt32BE(at + 2);
          for (const [streamId, window] of this.#streamWindows) {
            this.#streamWindows.set(streamId, window + value - this.#initialWindow);
          }
          this.#initialWindow = value;
        }
      }
      this.#socket.write(frame(FRAME_SETTINGS, FLAG_ACK, 0, Buffer.alloc(0)));
    } else if (type === FRAME_WINDOW_UPDATE) {
      const increment = payload.readUInt32BE(0) & 0x7fffffff;
      if (id === 0) {
        this.#connectionWindow += increment;
      } else {
        this.#streamWindows.set(id, (this.#streamWindows.get(id) ?? 0) + increment);
      }
    } else if (type === FRAME_RST_STREAM && state !== undefined) {
      state.resetCode = payload.readUInt32BE(0);
    } else if (type === FRAME_GOAWAY) {
      this.goawayCodes.push(payload.readUInt32BE(4));
    } else if (type === FRAME_HEADERS && state !== undefined) {
      state.headerFrames++;
      state.ended ||= (flags & FLAG_END_STREAM) !== 0;
    } else if (type === FRAME_DATA && state !== undefined) {
      state.dataBytes += payload.byteLength;
      state.ended ||= (flags & FLAG_END_STREAM) !== 0;
    }
  }
}
