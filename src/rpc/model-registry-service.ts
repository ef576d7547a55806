import { create } from "@bufbuild/protobuf";
import type { ServerWritableStream, sendUnaryData } from "@grpc/grpc-js";
import { StatusReplySchema, VersionInfoSchema } from "../gen/cogment/api/common_pb.js";
import {
  type CreateOrUpdateModelRequest,
  type DeleteModelRequest,
  ModelRegistrySP,
  type RetrieveModelsRequest,
  type RetrieveVersionInfosRequest,
} from "../gen/cogment/api/model_registry_pb.js";
import { GRPC_FRAME_PREFIX_LENGTH } from "../data/index.js";
import { packageInfo } from "../package-info.js";
import type { Registry } from "../registry/index.js";
import { encodedModelInfo, encodedVersionInfo, framedInfosReply } from "./encoded-infos.js";
import { type ServiceImplementation, createServiceDefinition } from "./service-definition.js";
import { writeWithBackpressure } from "./stream-writer.js";
import { WriteConfirmations } from "./write-confirmations.js";
import { toServiceError } from "./to-service-error.js";
import { invalidArgument } from "../errors/index.js";
import { requireMessage, validateModelId, validateUserData } from "./validate.js";
import { limitReplySize } from "./reply-size.js";
import { NO_UPLOAD_LIMITS, type UploadLimits } from "./upload-watchdog.js";
import { CreateVersionCall } from "./create-version-call.js";
import { decodeCreateVersionMessage, namedCountProblem, requestChecks } from "./request-limits.js";
import { NO_SEND_LIMITS, type SendLimits, SendWatchdog, connectionBytesWritten } from "./send-watchdog.js";
import { resetCallStream } from "./reset-call-stream.js";
import { handlerCallStream } from "./grpc-internals.js";
import type { Logger } from "../logger.js";
import type { UnaryRoute } from "./unary-stream.js";

type Methods = (typeof ModelRegistrySP)["method"];
/** Replies given as whole gRPC frames: version data as stored, infos assembled from cached encodings (encoded-infos.ts). */
const PRE_FRAMED = {
  createOrUpdateModel: true,
  deleteModel: true,
  retrieveVersionData: true,
  retrieveModels: true,
  retrieveVersionInfos: true,
  versionUpdate: true,
  createVersion: true,
} as const;

export type ModelRegistryImplementation = ServiceImplementation<Methods, typeof PRE_FRAMED>;

/**
 * Every request message is checked for size before it is decoded (request-limits.ts). CreateVersion's
 * body messages, most of what the server receives, and plain headers are read without protobuf-es
 * (body-chunk-decoder.ts).
 */
export const modelRegistryServiceDefinition = createServiceDefinition(ModelRegistrySP, PRE_FRAMED, {
  ...Object.fromEntries(ModelRegistrySP.methods.map((method) => [method.localName, requestChecks(method)])),
  createVersion: decodeCreateVersionMessage,
});

type ModelRegistryMethodName = (typeof ModelRegistrySP.methods)[number]["localName"];

/** One method of the service as registered with grpc-js (its path, its request deserializer). */
export function modelRegistryMethod(name: ModelRegistryMethodName): NonNullable<(typeof modelRegistryServiceDefinition)[string]> {
  const method = modelRegistryServiceDefinition[name];
  if (method === undefined) {
    throw new Error(`the ModelRegistrySP service definition has no ${name} method`);
  }
  return method;
}

export interface ServiceContext {
  readonly registry: Registry;
  /** Extra figures for Status (e.g. the worker pool's). */
  readonly extraStatus: () => Record<string, string>;
  /** How slow a CreateVersion client may be before the server gives up on it; no limits if absent. */
  readonly uploadLimits?: UploadLimits;
  /** How slow a RetrieveVersionData reader may be before its stream is reset; no limits if absent. */
  readonly sendLimits?: SendLimits;
  readonly log?: Logger;
}

// Failures are logged (and counted) when the call ends, by the call observer (call-observer.ts).

/** Runs a unary handler body and maps whatever it throws to a gRPC status. */
function unary<Res>(callback: sendUnaryData<Res>, body: () => Promise<Res> | Res): void {
  Promise.resolve()
    .then(body)
    .then(
      (reply) => callback(null, reply),
      (reason: unknown) => callback(toServiceError(reason)),
    );
}

/** Checked before decoding too (request-limits.ts: requestChecks); this one holds whatever the bytes were. */
function requireAtMostNamed(field: string, what: string, count: number): void {
  const problem = namedCountProblem(field, what, count);
  if (problem !== undefined) {
    throw invalidArgument(problem);
  }
}

function failStream(call: ServerWritableStream<unknown, unknown>, reason: unknown): void {
  if (!call.cancelled) {
    call.emit("error", toServiceError(reason));
  }
}

/** An empty reply message (CreateOrUpdateModelReply, DeleteModelReply) as a whole gRPC frame. */
const EMPTY_REPLY_FRAME = Buffer.alloc(GRPC_FRAME_PREFIX_LENGTH);

/*
 * The unary methods' answers, each one whole gRPC frame: the grpc-js handlers below and the calls
 * served below grpc-js (unary-stream.ts) run the same function.
 */

async function createOrUpdateModel(registry: Registry, request: CreateOrUpdateModelRequest): Promise<Buffer> {
  const info = requireMessage("CreateOrUpdateModelRequest.model_info", request.modelInfo);
  await registry.createOrUpdateModel({
    modelId: validateModelId("model_info.model_id", info.modelId),
    userData: validateUserData("model_info.user_data", info.userData),
  });
  return EMPTY_REPLY_FRAME;
}

async function deleteModel(registry: Registry, request: DeleteModelRequest): Promise<Buffer> {
  await registry.deleteModel(validateModelId("model_id", request.modelId));
  return EMPTY_REPLY_FRAME;
}

async function retrieveModels(registry: Registry, request: RetrieveModelsRequest): Promise<Buffer> {
  const { modelIds, modelsCount, modelHandle } = request;
  requireAtMostNamed("model_ids", "ids", modelIds.length);
  modelIds.forEach((id, index) => validateModelId(`model_ids[${index}]`, id));
  const page = await registry.listModels(modelIds, modelsCount, modelHandle);
  const models = limitReplySize(page.models);
  // Trimmed for size: the next page starts after the last model sent.
  const nextHandle =
    models.length === page.models.length ? page.nextHandle : String(Number(page.nextHandle) - page.models.length + models.length);
  return framedInfosReply(models.map(encodedModelInfo), nextHandle);
}

async function retrieveVersionInfos(registry: Registry, request: RetrieveVersionInfosRequest): Promise<Buffer> {
  const { modelId, versionNumbers, versionsCount, versionHandle } = request;
  requireAtMostNamed("version_numbers", "numbers", versionNumbers.length);
  const page = await registry.listVersions(validateModelId("model_id", modelId), versionNumbers, versionsCount, versionHandle);
  const versions = limitReplySize(page.versions);
  const last = versions[versions.length - 1];
  const nextHandle = versions.length === page.versions.length || last === undefined ? page.nextHandle : String(last.versionNumber + 1);
  return framedInfosReply(versions.map(encodedVersionInfo), nextHandle);
}

/** The methods served below grpc-js as well (fast-path.ts), with the same answers as their handlers. */
export function modelRegistryUnaryRoutes(registry: Registry): UnaryRoute[] {
  const route = <Req>(name: ModelRegistryMethodName, answer: (registry: Registry, request: Req) => Promise<Buffer>): UnaryRoute => {
    const method = modelRegistryMethod(name);
    return { path: method.path, deserialize: method.requestDeserialize, answer: (request) => answer(registry, request as Req) };
  };
  return [
    route("retrieveVersionInfos", retrieveVersionInfos),
    route("retrieveModels", retrieveModels),
    route("createOrUpdateModel", createOrUpdateModel),
    route("deleteModel", deleteModel),
  ];
}

export function createModelRegistryService(context: ServiceContext): ModelRegistryImplementation {
  const { registry } = context;
  return {
    createOrUpdateModel(call, callback) {
      unary(callback, () => createOrUpdateModel(registry, call.request));
    },

    deleteModel(call, callback) {
      unary(callback, () => deleteModel(registry, call.request));
    },

    retrieveModels(call, callback) {
      unary(callback, () => retrieveModels(registry, call.request));
    },

    retrieveVersionInfos(call, callback) {
      unary(callback, () => retrieveVersionInfos(registry, call.request));
    },

    createVersion(call, callback) {
      new CreateVersionCall(registry, call, callback, context.uploadLimits ?? NO_UPLOAD_LIMITS).start();
    },

    retrieveVersionData(call) {
      const sendLimits = context.sendLimits ?? NO_SEND_LIMITS;
      const send = async (): Promise<void> => {
        const { modelId, versionNumber } = call.request;
        const source = await registry.openVersionData(validateModelId("model_id", modelId), versionNumber);
        // The frames are views of the cached version: its memory may be reused once the lease is
        // released, so the lease is held until every write is confirmed (or the call is gone).
        const writes = new WriteConfirmations();
        // A reader that stops reading would hold the lease (and the version's bytes in the budget)
        // for as long as it keeps its stream open: past the send idle time its stream is reset,
        // which drops the queued messages and ends the call (then the lease is released below).
        // The bytes of a message still being written count as the reader's progress (send-watchdog.ts).
        const http2Stream = handlerCallStream(call);
        const connectionBytes = http2Stream === undefined ? undefined : () => connectionBytesWritten(http2Stream);
        const stalls = new SendWatchdog(sendLimits, (why) => {
          const versionAt = { modelId, versionNumber: source.version.versionNumber };
          if (why === "idle") {
            context.log?.warn(
              { ...versionAt, sendIdleTimeoutMs: sendLimits.idleTimeoutMs },
              "RetrieveVersionData reader stopped reading: stream reset (COGMENT_MODEL_REGISTRY_SEND_IDLE_TIMEOUT)",
            );
          } else {
            context.log?.warn(
              { ...versionAt, sendMinRate: sendLimits.minRateBytesPerSecond, why },
              "RetrieveVersionData reader too slow: stream reset (COGMENT_MODEL_REGISTRY_SEND_MIN_RATE)",
            );
          }
          if (!resetCallStream(call)) {
            context.log?.warn("grpc-js internals changed: cannot reset the stream of a stalled reader");
          }
        }, undefined, connectionBytes);
        // A stream waiting for room (a read the cache does not hold) is parked in the frames'
        // generator: its client going away must give its room back now, not once a room comes.
        const { sent, abandon } = source;
        if (abandon !== undefined) {
          call.once("cancelled", abandon);
        }
        try {
          let cancelled = false;
          for await (const frame of source.frames) {
            const confirm = stalls.track(writes.track(), frame.byteLength);
            const written =
              sent === undefined
                ? confirm
                : () => {
                    confirm();
                    sent(frame.byteLength);
                  };
            if (!(await writeWithBackpressure(call, frame, written))) {
              cancelled = true;
              break;
            }
          }
          if (!cancelled) {
            call.end();
            await writes.settled(call);
          }
        } finally {
          stalls.stop();
          if (abandon !== undefined) {
            call.off("cancelled", abandon);
          }
          source.release(!writes.allConfirmed);
        }
      };
      send().catch((reason: unknown) => failStream(call as ServerWritableStream<unknown, unknown>, reason));
    },

    versionUpdate(call) {
      const follow = async (): Promise<void> => {
        const modelId = validateModelId("model_id", call.request.modelId);
        const subscription = await registry.subscribe(modelId, {
          send: async (version) => {
            await writeWithBackpressure(call, framedInfosReply([encodedVersionInfo(version)]));
          },
          // An error status, never OK: see VersionSink.end.
          end: (reason) => failStream(call as ServerWritableStream<unknown, unknown>, reason),
        });
        const stop = (): void => registry.unsubscribe(modelId, subscription);
        if (call.cancelled || call.closed) {
          stop(); // the client went away while the model was looked up
          return;
        }
        call.on("cancelled", stop);
        call.on("close", stop);
      };
      follow().catch((reason: unknown) => failStream(call as ServerWritableStream<unknown, unknown>, reason));
    },

    version(_call, callback) {
      unary(callback, () =>
        create(VersionInfoSchema, {
          versions: [
            { name: "model_registry", version: packageInfo.version },
            { name: packageInfo.name, version: packageInfo.version },
          ],
        }),
      );
    },

    status(call, callback) {
      unary(callback, () => {
        const stats = registry.stats();
        const cache = stats.cache;
        const all: Record<string, string> = {
          // An integer percentage: the Cogment Directory reads overall_load as an unsigned 8-bit integer.
          overall_load: String(Math.round((cache.usedBytes * 100) / cache.maxBytes)),
          models: String(stats.models),
          subscribers: String(stats.subscribers),
          uploads_in_flight: String(stats.uploadsInFlight),
          upload_bytes_outside_budget: String(stats.uploadBytesOutsideBudget),
          streamed_read_bytes: String(stats.streamedReadBytes),
          streamed_reads_waiting: String(stats.streamedReadsWaiting),
          cache_max_bytes: String(cache.maxBytes),
          cache_used_bytes: String(cache.usedBytes),
          cache_data_bytes: String(cache.entryBytes),
          cache_reserved_bytes: String(cache.reservedBytes),
          cache_draining_bytes: String(cache.drainingBytes),
          cache_spare_bytes: String(cache.spareBytes),
          cache_reused_buffers: String(cache.reuses),
          cached_versions: String(cache.entries),
          cache_evictions_size: String(cache.evictions.size),
          cache_evictions_expired: String(cache.evictions.expired),
          ...context.extraStatus(),
        };
        const names = call.request.names;
        const wanted = names.includes("*") ? Object.keys(all) : names.filter((name) => Object.hasOwn(all, name));
        return create(StatusReplySchema, {
          statuses: Object.fromEntries(wanted.map((name) => [name, all[name] as string])),
        });
      });
    },
  };
}
