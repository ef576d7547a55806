/**
 * The RPCs of the soak test on one client connection, each with a deadline,
 * timed and counted by method and gRPC code. A call never throws: it resolves
 * with its value or its status.
 */
import { createHash } from "node:crypto";
import type * as grpc from "@grpc/grpc-js";
import { type FetchedData, type RegistryClient, type WireVersionInfo, errorText, fetchVersionData, grpcCode } from "../support/bench-client.js";
import { firstEvent } from "../../src/first-event.js";
import type { RetrieveModelsRequest, RetrieveVersionInfosRequest } from "../../test/support/registry-client.js";
import type { SoakTally } from "./soak-tally.js";

export type CallResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly code: number; readonly message: string };

export interface ModelPageReply {
  model_infos: { model_id: string }[];
  next_model_handle: string;
}

export interface VersionPageReply {
  version_infos: WireVersionInfo[];
  next_version_handle: string;
}

type Callback<T> = (error: grpc.ServiceError | null, value?: T) => void;
type UnaryMethod<T> = (request: object, options: grpc.CallOptions, callback: Callback<T>) => grpc.ClientUnaryCall;
type ClientStreamMethod<T> = (options: grpc.CallOptions, callback: Callback<T>) => grpc.ClientWritableStream<object>;

/** grpc-js reports a failure without a status (should not happen) as UNKNOWN. */
const UNKNOWN = 2;

export class SoakCalls {
  constructor(
    private readonly client: RegistryClient,
    private readonly tally: SoakTally,
    private readonly deadlineMs: number,
  ) {}

  createModel(modelId: string): Promise<CallResult<object>> {
    return this.unary("CreateOrUpdateModel", { model_info: { model_id: modelId, user_data: { owner: "soak" } } });
  }

  deleteModel(modelId: string): Promise<CallResult<object>> {
    return this.unary("DeleteModel", { model_id: modelId });
  }

  retrieveModels(request: RetrieveModelsRequest): Promise<CallResult<ModelPageReply>> {
    return this.unary("RetrieveModels", request);
  }

  retrieveVersionInfos(request: RetrieveVersionInfosRequest): Promise<CallResult<VersionPageReply>> {
    return this.unary("RetrieveVersionInfos", request);
  }

  status(): Promise<CallResult<{ statuses: Record<string, string> }>> {
    return this.unary("Status", { names: ["*"] });
  }

  /** CreateVersion of `data` in body messages of `chunkBytes`, honouring the stream's backpressure. */
  publish(modelId: string, data: Buffer, archived: boolean, chunkBytes: number): Promise<CallResult<WireVersionInfo>> {
    const startedAt = performance.now();
    return new Promise<CallResult<WireVersionInfo>>((resolve) => {
      const method = this.client.raw.CreateVersion as ClientStreamMethod<{ version_info: WireVersionInfo }>;
      let done = false;
      const call = method.call(this.client.raw, { deadline: this.deadline() }, (error, reply) => {
        done = true;
        resolve(error === null && reply !== undefined ? { ok: true, value: reply.version_info } : failed(error));
      });
      void (async () => {
        const header = {
          header: {
            version_info: {
              model_id: modelId,
              archived,
              data_size: String(data.byteLength),
              data_hash: "",
              creation_timestamp: "0",
              user_data: { size: String(data.byteLength) },
              version_number: 0,
            },
          },
        };
        const messages: object[] = [header];
        for (let offset = 0; offset < data.byteLength; offset += chunkBytes) {
          messages.push({ body: { data_chunk: data.subarray(offset, offset + chunkBytes) } });
        }
        for (const message of messages) {
          if (done) {
            return;
          }
          if (!call.write(message)) {
            await firstEvent(call, ["drain", "status"]);
          }
        }
        if (!done) {
          call.end();
        }
      })();
    }).then((result) => this.count("CreateVersion", result, startedAt));
  }

  /** RetrieveVersionData, hashed as it arrives. */
  async fetch(modelId: string, versionNumber: number): Promise<CallResult<FetchedData>> {
    const startedAt = performance.now();
    let result: CallResult<FetchedData>;
    try {
      result = { ok: true, value: await fetchVersionData(this.client, modelId, versionNumber, undefined, Date.now() + this.deadlineMs) };
    } catch (error) {
      result = failed(error);
    }
    return this.count("RetrieveVersionData", result, startedAt);
  }

  private unary<T>(name: string, request: object): Promise<CallResult<T>> {
    const startedAt = performance.now();
    return new Promise<CallResult<T>>((resolve) => {
      const method = this.client.raw[name] as UnaryMethod<T>;
      method.call(this.client.raw, request, { deadline: this.deadline() }, (error, reply) =>
        resolve(error === null && reply !== undefined ? { ok: true, value: reply } : failed(error)),
      );
    }).then((result) => this.count(name, result, startedAt));
  }

  private deadline(): Date {
    return new Date(Date.now() + this.deadlineMs);
  }

  private count<T>(method: string, result: CallResult<T>, startedAt: number): CallResult<T> {
    this.tally.call(method, result.ok ? 0 : result.code, performance.now() - startedAt);
    return result;
  }
}

function failed(error: unknown): { ok: false; code: number; message: string } {
  return { ok: false, code: grpcCode(error) ?? UNKNOWN, message: errorText(error) };
}

export function sha256Base64(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("base64");
}
