/**
 * A lean CreateVersion client over node:http2, for publishers that must not be the
 * bottleneck: the same client-streaming call on the wire as a grpc-js client (a header
 * message, then the data in body messages of `chunkBytes`), but the messages are
 * encoded once into one buffer and sent again for every version, with only the first
 * bytes of the data (a stamp) rewritten in place. grpc-js's client copies and frames
 * every chunk per call and costs about as much CPU per GB as the server; on 2 shared
 * cores, four of them would set the pace instead of the server.
 */
import * as http2 from "node:http2";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { watchGrpcStatus } from "./grpc-call-status.js";
import { grpcFrame } from "./small-requests.js";

const PATH = "/cogmentAPI.ModelRegistrySP/CreateVersion";
/** The stamp's bytes: the first STAMP_BYTES of every version's data. */
export const STAMP_BYTES = 16;

export interface LeanPublishOptions {
  readonly chunkBytes: number;
  readonly archived: boolean;
  readonly timeoutMs: number;
}

/** What CreateVersionReply's version_info says about the new version. */
export interface PublishedInfo {
  readonly versionNumber: number;
  readonly dataSize: number;
}

/**
 * One connection; `publish` sends one version at a time (the next call rewrites the
 * stamp in the shared request buffer, so calls must not overlap).
 */
export class Http2Publisher {
  private readonly session: http2.ClientHttp2Session;
  private readonly request: Buffer;
  /** Where the data's first byte sits in `request` (inside the first body message). */
  private readonly dataOffset: number;
  private busy = false;

  constructor(
    address: string,
    private readonly modelId: string,
    readonly versionBytes: number,
    private readonly options: LeanPublishOptions,
  ) {
    this.session = http2.connect(`http://${address}`);
    this.session.on("error", () => {});
    const { request, dataOffset } = encodeCreateVersion(modelId, versionBytes, options);
    this.request = request;
    this.dataOffset = dataOffset;
  }

  close(): void {
    this.session.close();
  }

  /** The version's data as it will be sent: the first bytes are the stamp written by `publish`. */
  data(): Buffer {
    return versionData(this.request, this.dataOffset, this.versionBytes, this.options.chunkBytes);
  }

  /** Publishes one version whose data starts with `stamp` (up to STAMP_BYTES; the rest is fixed). */
  publish(stamp: Uint8Array): Promise<PublishedInfo> {
    if (this.busy) {
      return Promise.reject(new Error("Http2Publisher.publish: the previous publish has not finished"));
    }
    if (stamp.byteLength > Math.min(STAMP_BYTES, this.versionBytes, this.options.chunkBytes)) {
      return Promise.reject(new Error(`stamp of ${stamp.byteLength} bytes: at most ${STAMP_BYTES} and within the first chunk`));
    }
    this.request.set(stamp, this.dataOffset);
    this.busy = true;
    return this.send().finally(() => (this.busy = false));
  }

  private send(): Promise<PublishedInfo> {
    return new Promise((resolve, reject) => {
      const request = this.session.request({ ":method": "POST", ":path": PATH, "content-type": "application/grpc", te: "trailers" });
      request.setTimeout(this.options.timeoutMs, () => request.close(http2.constants.NGHTTP2_CANCEL));
      const reply: Buffer[] = [];
      const failure = watchGrpcStatus(request);
      request.on("data", (chunk: Buffer) => reply.push(chunk));
      request.on("error", () => {});
      request.on("close", () => {
        const error = failure();
        if (error !== undefined) {
          reject(error);
          return;
        }
        try {
          const info = decodeCreateVersionReply(Buffer.concat(reply));
          if (info.dataSize !== this.versionBytes) {
            throw new Error(`CreateVersionReply: data_size ${info.dataSize}, expected ${this.versionBytes}`);
          }
          resolve(info);
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
      request.end(this.request);
    });
  }
}

/** The whole CreateVersion request stream: the header message, then the data (zeros) in body messages. */
export function encodeCreateVersion(
  modelId: string,
  versionBytes: number,
  options: Pick<LeanPublishOptions, "chunkBytes" | "archived">,
): { request: Buffer; dataOffset: number } {
  const info = new BinaryWriter().tag(1, WireType.LengthDelimited).string(modelId);
  if (options.archived) {
    info.tag(4, WireType.Varint).bool(true);
  }
  info.tag(6, WireType.Bit64).fixed64(versionBytes);
  const header = grpcFrame(
    new BinaryWriter()
      .tag(1, WireType.LengthDelimited)
      .bytes(new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(info.finish()).finish())
      .finish(),
  );
  const frames: Buffer[] = [header];
  let dataOffset = -1;
  for (let offset = 0; offset < versionBytes; offset += options.chunkBytes) {
    const length = Math.min(options.chunkBytes, versionBytes - offset);
    const frame = bodyFrame(length);
    if (dataOffset < 0) {
      dataOffset = header.byteLength + frame.byteLength - length;
    }
    frames.push(frame);
  }
  return { request: Buffer.concat(frames), dataOffset };
}

/** A body message framed for gRPC, its data (the last `length` bytes) random. */
function bodyFrame(length: number): Buffer {
  const prefix = new BinaryWriter().tag(1, WireType.LengthDelimited).uint32(length).finish();
  const bodyLength = prefix.byteLength + length;
  const outer = new BinaryWriter().tag(2, WireType.LengthDelimited).uint32(bodyLength).finish();
  const frame = grpcFrame(Buffer.alloc(outer.byteLength + bodyLength));
  frame.set(outer, 5);
  frame.set(prefix, 5 + outer.byteLength);
  fillPattern(frame.subarray(5 + outer.byteLength + prefix.byteLength), length);
  return frame;
}

/** Cheap, non-repeating-looking bytes (not all zeros, which compress or dedup in ways real data does not). */
function fillPattern(target: Buffer, seed: number): void {
  let x = (seed ^ 0x9e3779b9) >>> 0 || 1;
  for (let i = 0; i + 4 <= target.byteLength; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    target.writeUInt32LE(x >>> 0, i);
  }
}

/** The data carried by an encoded request (the body messages' payloads, concatenated). */
function versionData(request: Buffer, dataOffset: number, versionBytes: number, chunkBytes: number): Buffer {
  const parts: Buffer[] = [];
  let offset = dataOffset;
  let first = true;
  for (let done = 0; done < versionBytes; done += chunkBytes) {
    const length = Math.min(chunkBytes, versionBytes - done);
    if (!first) {
      offset += bodyFrameOverhead(length);
    }
    parts.push(request.subarray(offset, offset + length));
    offset += length;
    first = false;
  }
  return Buffer.concat(parts);
}

function bodyFrameOverhead(length: number): number {
  const prefix = new BinaryWriter().tag(1, WireType.LengthDelimited).uint32(length).finish().byteLength;
  const outer = new BinaryWriter().tag(2, WireType.LengthDelimited).uint32(prefix + length).finish().byteLength;
  return 5 + outer + prefix;
}

/** version_number and data_size from one gRPC-framed CreateVersionReply. */
export function decodeCreateVersionReply(frames: Buffer): PublishedInfo {
  if (frames.byteLength < 5 || frames.readUInt8(0) !== 0) {
    throw new Error(`CreateVersionReply: ${frames.byteLength} bytes, not one uncompressed gRPC message`);
  }
  const length = frames.readUInt32BE(1);
  if (frames.byteLength !== 5 + length) {
    throw new Error(`CreateVersionReply: message of ${length} bytes in ${frames.byteLength - 5}`);
  }
  let versionNumber: number | undefined;
  let dataSize: number | undefined;
  const reply = new BinaryReader(frames.subarray(5));
  while (reply.pos < reply.len) {
    const [field, wireType] = reply.tag();
    if (field !== 1 || wireType !== WireType.LengthDelimited) {
      reply.skip(wireType);
      continue;
    }
    const info = new BinaryReader(reply.bytes());
    while (info.pos < info.len) {
      const [infoField, infoType] = info.tag();
      if (infoField === 2 && infoType === WireType.Varint) {
        versionNumber = info.uint32();
      } else if (infoField === 6 && infoType === WireType.Bit64) {
        dataSize = Number(info.fixed64());
      } else {
        info.skip(infoType);
      }
    }
  }
  if (versionNumber === undefined || versionNumber < 1) {
    throw new Error(`CreateVersionReply: version_number ${String(versionNumber)}`);
  }
  return { versionNumber, dataSize: dataSize ?? 0 };
}
