import assert from "node:assert/strict";
import type { ClientHttp2Session, ClientHttp2Stream } from "node:http2";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { loadSync } from "@grpc/proto-loader";

const service = loadSync(["cogment/api/model_registry.proto"], {
  includeDirs: [fileURLToPath(new URL("../../../proto", import.meta.url))],
  keepCase: true,
})["cogmentAPI.ModelRegistrySP"] as unknown as Record<string, { path: string; requestSerialize: (value: object) => Buffer }>;

/**
 * A RetrieveVersionData stream on a bare HTTP/2 session, left paused: the client grants no more
 * flow-control window, so the server's writes stay unconfirmed (it truly stops reading; grpc-js
 * clients keep reading into their own memory when paused, so they cannot play this part).
 */
export function openStalledReader(session: ClientHttp2Session, modelId: string, versionNumber: number): ClientHttp2Stream {
  const method = service.RetrieveVersionData;
  assert.ok(method);
  const message = method.requestSerialize({ model_id: modelId, version_number: versionNumber });
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  const stream = session.request({ ":method": "POST", ":path": method.path, "content-type": "application/grpc", te: "trailers" });
  stream.pause();
  stream.end(frame);
  return stream;
}

/**
 * Resolves once the server is sending on a stream opened by openStalledReader (its first bytes are
 * buffered here: the server holds the version and its writes wait for the window); fails the test if
 * none came within `timeoutMs`.
 */
export async function untilSending(stream: ClientHttp2Stream, timeoutMs = 30_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; stream.readableLength === 0; await sleep(10)) {
    assert.ok(Date.now() < deadline && !stream.closed, `the server sent nothing on the stream within ${timeoutMs} ms (closed: ${stream.closed})`);
  }
}

/** What a RetrieveVersionData stream sent: its chunks' data bytes joined, and its grpc-status. */
export interface ReadOutcome {
  readonly data: Buffer;
  readonly grpcStatus: string | undefined;
}

/** Resumes a stream opened by openStalledReader and reads it to its end. */
export function readToEnd(stream: ClientHttp2Stream): Promise<ReadOutcome> {
  return new Promise((resolve, reject) => {
    const body: Buffer[] = [];
    let grpcStatus: string | undefined;
    stream.on("response", (headers) => (grpcStatus ??= headers["grpc-status"] as string | undefined));
    stream.on("trailers", (trailers) => (grpcStatus = trailers["grpc-status"] as string | undefined));
    stream.on("data", (piece: Buffer) => body.push(piece));
    stream.on("error", reject);
    stream.on("close", () => resolve({ data: chunkData(Buffer.concat(body)), grpcStatus }));
    stream.resume();
  });
}

/** The data_chunk bytes of a gRPC response body (5-byte prefix, then `RetrieveVersionDataReplyChunk { data_chunk }`). */
function chunkData(body: Buffer): Buffer {
  const pieces: Buffer[] = [];
  let offset = 0;
  while (offset + 5 <= body.length) {
    const length = body.readUInt32BE(offset + 1);
    const message = body.subarray(offset + 5, offset + 5 + length);
    pieces.push(lengthDelimitedField(message));
    offset += 5 + length;
  }
  return Buffer.concat(pieces);
}

/** The bytes of the one length-delimited field a message holds (empty for an empty message). */
function lengthDelimitedField(message: Buffer): Buffer {
  if (message.length === 0) {
    return message;
  }
  let position = 1; // the tag
  let length = 0;
  let scale = 1;
  for (;;) {
    const byte = message[position++] as number;
    length += (byte & 0x7f) * scale;
    scale *= 128;
    if (byte < 0x80) break;
  }
  return message.subarray(position, position + length);
}
