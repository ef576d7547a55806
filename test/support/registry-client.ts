/**
 * An e2e client built from proto/ with @grpc/proto-loader, independently of the
 * server's protobuf-es codegen, so a codegen mistake cannot hide from the tests.
 * fixed64 fields come back as decimal strings.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";

const PROTO_DIR = fileURLToPath(new URL("../../../proto", import.meta.url));

export interface WireModelInfo {
  model_id: string;
  user_data: Record<string, string>;
}

export interface WireVersionInfo {
  model_id: string;
  version_number: number;
  creation_timestamp: string;
  archived: boolean;
  data_hash: string;
  data_size: string;
  user_data: Record<string, string>;
}

export interface VersionHeaderInput {
  model_id: string;
  archived?: boolean;
  data_size: number | string;
  data_hash?: string;
  creation_timestamp?: string;
  user_data?: Record<string, string>;
  version_number?: number;
}

type Callback<T> = (error: grpc.ServiceError | null, value?: T) => void;
interface RawClient extends grpc.Client {
  [method: string]: unknown;
}

const definition = loadSync(["cogment/api/model_registry.proto"], {
  includeDirs: [PROTO_DIR],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const loaded = grpc.loadPackageDefinition(definition) as unknown as {
  cogmentAPI: { ModelRegistrySP: grpc.ServiceClientConstructor };
};

export const MAX_TEST_MESSAGE_BYTES = 128 * 1024 * 1024;

/** RetrieveModels request fields, as proto-loader takes them (snake_case). */
export interface RetrieveModelsRequest {
  model_ids?: string[];
  models_count?: number;
  model_handle?: string;
}

/** RetrieveVersionInfos request fields, as proto-loader takes them (snake_case). */
export interface RetrieveVersionInfosRequest {
  model_id: string;
  version_numbers?: number[];
  versions_count?: number;
  version_handle?: string;
}

export class RegistryClient {
  readonly raw: RawClient;

  constructor(address: string, options: grpc.ClientOptions = {}) {
    this.raw = new loaded.cogmentAPI.ModelRegistrySP(address, grpc.credentials.createInsecure(), {
      "grpc.max_receive_message_length": MAX_TEST_MESSAGE_BYTES,
      "grpc.max_send_message_length": MAX_TEST_MESSAGE_BYTES,
      ...options,
    }) as RawClient;
  }

  close(): void {
    this.raw.close();
  }

  private unary<Req, Res>(method: string, request: Req): Promise<Res> {
    return new Promise((resolve, reject) => {
      const fn = this.raw[method] as (req: Req, cb: Callback<Res>) => void;
      fn.call(this.raw, request, (error, value) => (error ? reject(error) : resolve(value as Res)));
    });
  }

  createOrUpdateModel(request: { model_info?: Partial<WireModelInfo> }): Promise<object> {
    return this.unary("CreateOrUpdateModel", request);
  }

  createModel(model_id: string, user_data: Record<string, string> = {}): Promise<object> {
    return this.createOrUpdateModel({ model_info: { model_id, user_data } });
  }

  deleteModel(model_id: string): Promise<object> {
    return this.unary("DeleteModel", { model_id });
  }

  retrieveModels(request: RetrieveModelsRequest = {}): Promise<{
    model_infos: WireModelInfo[];
    next_model_handle: string;
  }> {
    return this.unary("RetrieveModels", request);
  }

  retrieveVersionInfos(request: RetrieveVersionInfosRequest): Promise<{ version_infos: WireVersionInfo[]; next_version_handle: string }> {
    return this.unary("RetrieveVersionInfos", request);
  }

  version(): Promise<{ versions: { name: string; version: string }[] }> {
    return this.unary("Version", {});
  }

  status(names: string[]): Promise<{ statuses: Record<string, string> }> {
    return this.unary("Status", { names });
  }

  /** Opens a CreateVersion stream for a test to write, end or cancel by hand; `reply` settles with its outcome. */
  openCreateVersion(): { call: grpc.ClientWritableStream<object>; reply: Promise<{ version_info: WireVersionInfo }> } {
    const fn = this.raw.CreateVersion as (cb: Callback<{ version_info: WireVersionInfo }>) => grpc.ClientWritableStream<object>;
    let settle: Callback<{ version_info: WireVersionInfo }> = () => {};
    const reply = new Promise<{ version_info: WireVersionInfo }>((resolve, reject) => {
      settle = (error, value) => (error ? reject(error) : resolve(value as { version_info: WireVersionInfo }));
    });
    const call = fn.call(this.raw, (error, value) => settle(error, value));
    return { call, reply };
  }

  /** Sends raw CreateVersionRequestChunk messages (for ordering tests). */
  createVersionRaw(messages: object[], options: { endStream?: boolean } = {}): Promise<{ version_info: WireVersionInfo }> {
    const { call, reply } = this.openCreateVersion();
    void (async () => {
      for (const message of messages) {
        if (!call.write(message)) {
          await new Promise((r) => call.once("drain", r));
        }
      }
      if (options.endStream !== false) {
        call.end();
      }
    })();
    return reply;
  }

  createVersion(header: VersionHeaderInput, chunks: readonly (Buffer | string)[]): Promise<WireVersionInfo> {
    const messages: object[] = [
      {
        header: {
          version_info: {
            model_id: header.model_id,
            archived: header.archived ?? false,
            data_size: String(header.data_size),
            data_hash: header.data_hash ?? "",
            creation_timestamp: header.creation_timestamp ?? "0",
            user_data: header.user_data ?? {},
            version_number: header.version_number ?? 0,
          },
        },
      },
      ...chunks.map((chunk) => ({ body: { data_chunk: typeof chunk === "string" ? Buffer.from(chunk) : chunk } })),
    ];
    return this.createVersionRaw(messages).then((reply) => reply.version_info);
  }

  /** Publishes `data` in chunks of `chunkBytes`. */
  publish(model_id: string, data: Buffer, options: Partial<VersionHeaderInput> & { chunkBytes?: number } = {}): Promise<WireVersionInfo> {
    const chunkBytes = options.chunkBytes ?? 1024 * 1024;
    const chunks: Buffer[] = [];
    for (let offset = 0; offset < data.length; offset += chunkBytes) {
      chunks.push(data.subarray(offset, offset + chunkBytes));
    }
    return this.createVersion({ ...options, model_id, data_size: data.length }, chunks);
  }

  /** Collects every chunk of RetrieveVersionData. */
  retrieveVersionData(model_id: string, version_number: number): Promise<Buffer[]> {
    return new Promise((resolve, reject) => {
      const fn = this.raw.RetrieveVersionData as (req: object) => grpc.ClientReadableStream<{ data_chunk: Buffer }>;
      const call = fn.call(this.raw, { model_id, version_number });
      const chunks: Buffer[] = [];
      call.on("data", (message) => chunks.push(message.data_chunk));
      call.on("error", reject);
      call.on("end", () => resolve(chunks));
    });
  }

  async retrieveData(model_id: string, version_number: number): Promise<Buffer> {
    return Buffer.concat(await this.retrieveVersionData(model_id, version_number));
  }

  versionUpdate(model_id: string): grpc.ClientReadableStream<{ version_info: WireVersionInfo }> {
    const fn = this.raw.VersionUpdate as (req: object) => grpc.ClientReadableStream<{ version_info: WireVersionInfo }>;
    return fn.call(this.raw, { model_id });
  }
}

/** Asserts that `promise` fails with gRPC status `code` and details matching `message`. */
export async function rejectsWithStatus(promise: Promise<unknown>, code: grpc.status, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: grpc.ServiceError) => {
    assert.equal(error.code, code, error.message);
    assert.match(error.details, message);
    return true;
  });
}
