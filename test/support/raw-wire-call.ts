/*
 * One gRPC call with raw node:http2 (no gRPC library between the test and the wire), giving back
 * exactly what the server sent: every response header but `date` in order, the DATA bytes, the
 * trailers and the stream's reset code; and what comparing the calls served below grpc-js with
 * grpc-js's own path byte for byte needs besides (create-version-stream.test.ts, unary-stream.test.ts).
 */
import assert from "node:assert/strict";
import { type ClientHttp2Session, type IncomingHttpHeaders, connect, constants } from "node:http2";

export interface RawResponse {
  /** The response headers as received, in order, without `date`. */
  readonly headers: string[];
  readonly data: Buffer;
  readonly trailers: string[] | undefined;
  readonly rstCode: number | undefined;
}

export interface CallControls {
  /** Node's stream.close(CANCEL): it ends the request stream, then resets it. */
  cancel(): void;
  /** The client's connection goes away at once (no END_STREAM, no RST_STREAM). */
  dropConnection(): void;
  /** Resolves once the response headers have arrived. */
  response(): Promise<void>;
  /** Ends the request stream. */
  end(): void;
  /** Resolves once the server took the upload's header (it counts the upload in flight); fails after 30 s. */
  untilUploading(): Promise<void>;
}

export interface RawCallOptions {
  readonly extraHeaders?: Readonly<Record<string, string | readonly string[]>>;
  /** Ends the request stream after the frames (default true). */
  readonly end?: boolean;
  /** Run once the frames are written (e.g. to cancel the call, or stop the server). */
  readonly afterWrite?: (controls: CallControls) => void | Promise<void>;
  /** Whether the server counts an upload in flight now (for `untilUploading`). */
  readonly uploading?: () => boolean;
}

/** Waits (polling, at most 30 s) until `check` holds; whether it did. */
export async function settles(check: () => boolean, timeoutMs = 30_000): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; !check(); await new Promise((resolve) => setTimeout(resolve, 10))) {
    if (Date.now() >= deadline) {
      return false;
    }
  }
  return true;
}

function rawPairs(raw: unknown, headers: IncomingHttpHeaders): string[] {
  const list = Array.isArray(raw) ? (raw as string[]) : Object.entries(headers).flatMap(([name, value]) => [name, String(value)]);
  const pairs: string[] = [];
  for (let i = 0; i < list.length; i += 2) {
    if (list[i] !== "date") {
      pairs.push(`${list[i]}: ${list[i + 1]}`);
    }
  }
  return pairs;
}

/**
 * Sends `frames` as they are (each one write) as the request stream of `path` on a new connection,
 * then END_STREAM unless told otherwise, and gives what came back, raw.
 */
export async function rawCall(address: string, path: string, frames: readonly Buffer[], options: RawCallOptions = {}): Promise<RawResponse> {
  const session: ClientHttp2Session = connect(`http://${address}`);
  session.on("error", () => undefined);
  try {
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...options.extraHeaders,
    });
    stream.on("error", () => undefined);
    let headers: string[] = [];
    let trailers: string[] | undefined;
    const data: Buffer[] = [];
    stream.on("response", (received: IncomingHttpHeaders, _flags: number, raw?: unknown) => {
      headers = rawPairs(raw, received);
    });
    stream.on("trailers", (received: IncomingHttpHeaders, _flags: number, raw?: unknown) => {
      trailers = rawPairs(raw, received);
    });
    stream.on("data", (chunk: Buffer) => data.push(chunk));
    const closed = new Promise<number | undefined>((resolve) => stream.once("close", () => resolve(stream.rstCode)));
    const responded = new Promise<void>((resolve) => stream.once("response", () => resolve()));
    for (const bytes of frames) {
      stream.write(bytes);
    }
    if (options.end !== false) {
      stream.end();
    }
    await options.afterWrite?.({
      cancel: () => stream.close(constants.NGHTTP2_CANCEL),
      dropConnection: () => session.destroy(),
      response: () => responded,
      end: () => stream.end(),
      untilUploading: async () => {
        const { uploading } = options;
        assert.ok(uploading !== undefined, "rawCall: no `uploading` check given");
        assert.ok(await settles(uploading), "the server did not take the upload's header within 30 s");
      },
    });
    const rstCode = await closed;
    return { headers, data: Buffer.concat(data), trailers, rstCode };
  } finally {
    session.close();
  }
}

/** A gRPC message with its 5-byte prefix: the compressed flag (0 unless given) and the length. */
export function frame(message: Uint8Array, flag = 0): Buffer {
  const framed = Buffer.alloc(5 + message.byteLength);
  framed.writeUInt8(flag, 0);
  framed.writeUInt32BE(message.byteLength, 1);
  framed.set(message, 5);
  return framed;
}

/** A server's JSON log line, as far as the comparisons read it. */
export interface LogLine {
  readonly msg: string;
  readonly method?: string;
  readonly code?: string;
  readonly details?: string;
  readonly modelId?: string;
}

/** Logged details, without what differs between two servers (request ids are not in details). */
export function logged(lines: readonly LogLine[]): { code?: string; details?: string; modelId?: string }[] {
  return lines.map(({ code, details, modelId }) => ({ code, details, modelId }));
}
