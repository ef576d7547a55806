import { Cluster } from "ioredis";
import type { Logger } from "../logger.js";
import type { ModelRecord, VersionRecord } from "../registry/index.js";
import { ChangeFeed } from "./change-feed.js";
import { toRegistryError } from "./redis-errors.js";
import { RedisConnection, type RedisConnectionOptions } from "./redis-connection.js";
import { DEFAULT_KEY_PREFIX, type GlobalKeys, type ModelKeys, globalKeys, modelKeys, versionInfoKey } from "./redis-keys.js";
import {
  CLAIM_NUMBER,
  COMMIT_VERSION,
  DELETE_MODEL,
  END_DELETION,
  END_LEASE,
  IMPORT_ARCHIVED,
  LIST_VERSIONS,
  PUT_MODEL,
  RAISE_COUNTER,
  RAISE_COUNTER_IN_GENERATION,
  RELEASE_CLAIM,
  RENEW_CLAIM,
  RENEW_DELETION,
  RENEW_LEASE,
  SKIP_NUMBER,
} from "./redis-scripts.js";
import { type RedisEndpoint, parseRedisUrl } from "./redis-url.js";
import { ChunkBufferPool, type ChunkBufferPoolStats } from "./chunk-buffer-pool.js";
import { ReplicationUnconfirmed, ReplicationWait, type WriteMark } from "./replication-wait.js";
import { type NewVersion, type StoredVersion, decodeStoredVersion, encodeImportedVersion, encodeVersionBody } from "./version-codec.js";
import type { BulkSink } from "./chunk-channel.js";
import { type UploadedData, VersionDataWriter, copyVersionChunks, readVersionChunks } from "./version-data.js";

export interface RedisRegistryStoreOptions extends RedisConnectionOptions {
  /** VERSION_CACHE_EXPIRATION: a transient version's keys expire this long after its commit once it is not the latest; 0: never (evictable only). */
  readonly expirationMs: number;
  /** Every key and the channel start with this; instances of one registry must agree on it. */
  readonly keyPrefix?: string;
  /** Size of the chunk keys of version data (the last one is smaller). */
  readonly chunkBytes?: number;
  /** TTL of an upload's pending chunks, refreshed while it goes on. */
  readonly pendingTtlMs?: number;
  /** Chunk writes of one upload not yet acknowledged before it waits. */
  readonly maxChunksInFlight?: number;
  /**
   * COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS: after each write a client is told succeeded (a version's
   * commit, a model's creation or update, its deletion), `WAIT` for this many replicas to acknowledge
   * it; fewer: the call fails with ReplicationUnconfirmed (UNAVAILABLE). 0 (default): no wait.
   */
  readonly waitReplicas?: number;
  /** COGMENT_MODEL_REGISTRY_REDIS_WAIT_TIMEOUT: WAIT's timeout, in ms. */
  readonly waitTimeoutMs?: number;
  readonly log?: Logger;
}

export const DEFAULT_WAIT_TIMEOUT_MS = 1000;

export const DEFAULT_CHUNK_BYTES = 2 * 1024 * 1024;
export const DEFAULT_PENDING_TTL_MS = 10 * 60 * 1000;
const DEFAULT_MAX_CHUNKS_IN_FLIGHT = 2;
/** version_number is a uint32 on the wire. */
const MAX_VERSION_NUMBER = 0xffff_ffff;
/** Archived versions imported per script call (bounds one script's run time). */
const IMPORT_BATCH = 500;
/** Model infos read at once by getModels. */
const MODEL_READ_BATCH = 1000;

export interface ModelPageFromRedis {
  readonly models: readonly ModelRecord[];
  /** Offset of the next page in the models index (the registry's model_handle). */
  readonly nextOffset: number;
}

/** A version number held by claimNumber until commitVersion (or releaseClaim, or its lease runs out). */
export interface NumberClaim {
  readonly token: string;
  readonly versionNumber: number;
  /** The model's generation when the number was claimed (commitVersion checks it). */
  readonly generation: number;
  /**
   * How far the archive's numbering records reach (0: unknown to Redis): a number at or above it must
   * be recorded there before it is handed out (see writeSharedReservation), and commitVersion told.
   */
  readonly reserved: number;
}

/** What keeps a deleted model from being created again while its deleter removes its archive files. */
export interface DeletionLease {
  readonly token: string;
  readonly leaseMs: number;
}

export interface PutModelResult {
  readonly created: boolean;
  /** The model's generation: pass it to commitVersion for uploads begun now. */
  readonly generation: number;
}

/**
 * The registry's shared state in Redis: models, version numbering, version infos, transient version
 * data and change notifications, for several instances at once. Every change of a model is one Lua
 * script on that model's keys (one hash slot): atomic, ordered, and published as it happens. This is
 * the data layer under the registry-state seam; it knows neither actors nor gRPC. Every call fails
 * within the command timeout with a RegistryError (UNAVAILABLE naming Redis when it is unreachable).
 */
export class RedisRegistryStore {
  readonly feed: ChangeFeed;
  private readonly prefix: string;
  private readonly global: GlobalKeys;
  private readonly chunkBytes: number;
  private readonly pendingTtlMs: number;
  private readonly maxChunksInFlight: number;
  /** The uploads' chunk buffers, kept from one upload to the next (chunk-buffer-pool.ts). */
  private readonly chunkBuffers: ChunkBufferPool;
  /** Set when writes wait for their replication (waitReplicas > 0). */
  readonly replication: ReplicationWait | undefined;

  private constructor(
    readonly connection: RedisConnection,
    private readonly options: RedisRegistryStoreOptions,
  ) {
    this.prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
    this.global = globalKeys(this.prefix);
    this.chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.pendingTtlMs = options.pendingTtlMs ?? DEFAULT_PENDING_TTL_MS;
    this.maxChunksInFlight = options.maxChunksInFlight ?? DEFAULT_MAX_CHUNKS_IN_FLIGHT;
    // Enough for two uploads at once; more at once allocate the rest.
    this.chunkBuffers = new ChunkBufferPool(this.chunkBytes, 2 * (1 + this.maxChunksInFlight));
    this.feed = new ChangeFeed(connection.subscriber, this.global.events, options.log);
    const replicas = options.waitReplicas ?? 0;
    this.replication =
      replicas > 0 ? new ReplicationWait(connection, { replicas, timeoutMs: options.waitTimeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS }) : undefined;
  }

  /**
   * Connects (COGMENT_MODEL_REGISTRY_REDIS_URL's value or a parsed endpoint) and subscribes to the
   * changes. Does not wait for Redis: `connection.healthy` and its "health" events say when it is up,
   * `connection.waitUntilHealthy` waits for it.
   */
  static create(url: string | RedisEndpoint, options: RedisRegistryStoreOptions): RedisRegistryStore {
    const endpoint = typeof url === "string" ? parseRedisUrl(url) : url;
    const store = new RedisRegistryStore(new RedisConnection(endpoint, options), options);
    store.feed.start().catch(() => undefined); // ioredis subscribes again at every (re)connection
    return store;
  }

  get healthy(): boolean {
    return this.connection.healthy;
  }

  close(): Promise<void> {
    this.chunkBuffers.clear();
    return this.connection.close();
  }

  // --- models ---

  /** Creates the model or replaces its user data. */
  async putModel(model: ModelRecord): Promise<PutModelResult> {
    const keys = this.keysOf(model.modelId);
    // The model's node and the index's (one node but on a Redis Cluster): a lost entry would leave the model unlisted.
    const mark = this.replication?.mark([keys.model, this.global.models]);
    const index = (): Promise<number> => this.connection.call(() => this.connection.commands.zadd(this.global.models, 0, model.modelId), this.global.models);
    // Before the script: a create cut short after it (the instance killed) leaves its model listed
    // (an entry whose model never came is skipped and removed by listings, as a deletion's).
    await index();
    const [created, generation] = (await this.connection.runScript(
      PUT_MODEL,
      [keys.model, keys.generation, keys.deleting],
      [JSON.stringify(model.userData), this.global.events, JSON.stringify(model.modelId)],
    )) as [number, string];
    // And after it (see deleteModel): a deletion racing with this may have removed the first entry.
    await index();
    const result = { created: created === 1, generation: Number(generation) };
    await this.confirmReplicated(mark, () => `model "${model.modelId}" is ${result.created ? "created" : "updated"}`, result);
    return result;
  }

  async getModel(modelId: string): Promise<ModelRecord | undefined> {
    const userData = await this.connection.call(() => this.connection.commands.hget(this.keysOf(modelId).model, "userData"), this.keysOf(modelId).model);
    return userData === null ? undefined : { modelId, userData: JSON.parse(userData) as Record<string, string> };
  }

  /**
   * getModel and the model's generation, in one round trip (both keys in the model's slot): what an
   * upload reads at its begin, to commit only into the model as it was then (see commitVersion).
   */
  async getModelAndGeneration(modelId: string): Promise<{ readonly model: ModelRecord; readonly generation: number } | undefined> {
    const keys = this.keysOf(modelId);
    const results = await this.connection.call(
      async () => (await this.connection.commands.pipeline().hget(keys.model, "userData").get(keys.generation).exec()) ?? [],
      keys.model,
    );
    const [[modelError, userData], [generationError, generation]] = results as [[Error | null, string | null], [Error | null, string | null]];
    if (modelError !== null || generationError !== null) {
      throw toRegistryError(this.connection.address, modelError ?? generationError);
    }
    if (userData === null) {
      return undefined;
    }
    return { model: { modelId, userData: JSON.parse(userData) as Record<string, string> }, generation: Number(generation ?? "0") };
  }

  /**
   * The models of `modelIds`, in order (undefined where there is none): MODEL_READ_BATCH reads at a
   * time, so that a long list never makes a promise per id at once (V8's Promise.all slows down to
   * minutes past a million of them).
   */
  async getModels(modelIds: readonly string[]): Promise<(ModelRecord | undefined)[]> {
    const models: (ModelRecord | undefined)[] = [];
    for (let at = 0; at < modelIds.length; at += MODEL_READ_BATCH) {
      const batch = await Promise.all(modelIds.slice(at, at + MODEL_READ_BATCH).map((modelId) => this.getModel(modelId)));
      models.push(...batch);
    }
    return models;
  }

  /** The model's generation (bumped by every deletion): read it when an upload begins. */
  async generation(modelId: string): Promise<number> {
    const value = await this.connection.call(() => this.connection.commands.get(this.keysOf(modelId).generation), this.keysOf(modelId).generation);
    return Number(value ?? "0");
  }

  /** Every model id in UTF-8 byte order (an entry whose model was just deleted may still be there). */
  listModelIds(): Promise<string[]> {
    return this.connection.call(() => this.connection.commands.zrange(this.global.models, 0, -1), this.global.models);
  }

  /**
   * Model ids in UTF-8 byte order from rank `offset`, at most `count` (0: all to the end), and how many
   * the index holds: one round trip, O(log N + count) (ZRANGE by rank on the score-0 index, which
   * Redis orders by memcmp of the members), whatever the number of models.
   */
  async listModelIdPage(offset: number, count: number): Promise<{ readonly ids: string[]; readonly total: number }> {
    const stop = count === 0 ? -1 : offset + count - 1;
    const results = await this.connection.call(
      async () => (await this.connection.commands.pipeline().zrange(this.global.models, offset, stop).zcard(this.global.models).exec()) ?? [],
      this.global.models,
    );
    const [[rangeError, ids], [countError, total]] = results as [[Error | null, string[]], [Error | null, number]];
    if (rangeError !== null || countError !== null) {
      throw toRegistryError(this.connection.address, rangeError ?? countError);
    }
    return { ids, total };
  }

  /**
   * Models in UTF-8 byte order from `offset`, at most `count` (0: all). The page may be shorter than
   * `count` when an index entry outlived its model (a deletion cut short); such entries are removed.
   */
  async listModels(offset: number, count: number): Promise<ModelPageFromRedis> {
    const stop = count === 0 ? -1 : offset + count - 1;
    const ids = await this.connection.call(() => this.connection.commands.zrange(this.global.models, offset, stop), this.global.models);
    const models = await this.getModels(ids);
    const found: ModelRecord[] = [];
    for (const [index, model] of models.entries()) {
      if (model === undefined) {
        await this.dropFromIndexIfGone(ids[index] as string);
      } else {
        found.push(model);
      }
    }
    return { models: found, nextOffset: offset + ids.length };
  }

  /**
   * Deletes the model with its versions and data; every instance hears of it ("deleted" change).
   * Returns false if there was no such model.
   */
  async deleteModel(modelId: string): Promise<boolean> {
    return (await this.deleteModelGeneration(modelId)) !== undefined;
  }

  /**
   * deleteModel returning the model's generation after the deletion (the one its "deleted" change
   * carries). With `lease`, the model cannot be created again (putModel: UNAVAILABLE) until
   * endDeletion with its token, or until the lease runs out (renewDeletion extends it).
   */
  async deleteModelGeneration(modelId: string, lease?: DeletionLease): Promise<number | undefined> {
    const keys = this.keysOf(modelId);
    // The model's node only: an index entry outliving its model is skipped and removed by listings.
    const mark = this.replication?.mark([keys.model]);
    // The model first, then its index entry: a deletion cut short between the two leaves an entry whose
    // model is gone (listings skip and remove it), never a model that exists unlisted. A create racing
    // with this ends listed: the entry is put back when the model exists again after the removal.
    const deleted = await this.connection.runScript(
      DELETE_MODEL,
      [keys.model, keys.generation, keys.counter, keys.numbers],
      [keys.base, this.global.events, JSON.stringify(modelId), ...(lease === undefined ? [] : [lease.token, lease.leaseMs])],
    );
    await this.dropFromIndexIfGone(modelId);
    if (Number(deleted) === 0) {
      return undefined;
    }
    await this.confirmReplicated(mark, () => `model "${modelId}" is deleted`, Number(deleted));
    return Number(deleted);
  }

  /** Extends a deletion's lease (deleteModelGeneration); false when it is no longer held by `token` (it ran out). */
  async renewDeletion(modelId: string, token: string, leaseMs: number): Promise<boolean> {
    const keys = this.keysOf(modelId);
    return Number(await this.connection.runScript(RENEW_DELETION, [keys.model], [keys.base, token, leaseMs])) === 1;
  }

  /** Ends a deletion's lease if `token` still holds it: the model may be created again. */
  async endDeletion(modelId: string, token: string): Promise<void> {
    const keys = this.keysOf(modelId);
    await this.connection.runScript(END_DELETION, [keys.model], [keys.base, token]);
  }

  // --- numbering and the archive ---

  /** Keeps numbering above `floor` (the archive's highest version number); returns the counter. */
  async raiseCounter(modelId: string, floor: number): Promise<number> {
    const keys = this.keysOf(modelId);
    return Number(await this.connection.runScript(RAISE_COUNTER, [keys.model, keys.counter], [floor]));
  }

  /**
   * Raises the counter to `floor` if it is lower and the model is still of `generation` (see
   * RAISE_COUNTER_IN_GENERATION): after Redis lost commits this instance saw. Returns the counter
   * before the raise, undefined when nothing changed.
   */
  async raiseCounterInGeneration(modelId: string, floor: number, generation: number): Promise<number | undefined> {
    const keys = this.keysOf(modelId);
    const before = Number(await this.connection.runScript(RAISE_COUNTER_IN_GENERATION, [keys.model, keys.generation, keys.counter], [floor, generation]));
    return before < 0 ? undefined : before;
  }

  /** How far the archive's numbering records reach, as Redis knows it (0: unknown; see NumberClaim.reserved). */
  async reservedNumbers(modelId: string): Promise<number> {
    const key = `${this.keysOf(modelId).base}reserved`;
    return Number((await this.connection.call(() => this.connection.commands.get(key), key)) ?? 0);
  }

  /**
   * Imports a model of the archive and its archived versions, creating only what Redis lacks, and
   * raises the numbering above them: the migration from a single-mode archive, and the recovery of a
   * Redis that lost its data. With `replaceUserData`, the archive's user data replaces Redis's (a
   * single-mode run updated the model). Returns the counter; undefined, importing nothing, for a
   * model this Redis saw a deletion of, unless `evenIfDeleted` (a reconciliation after a single-mode
   * run, which no instance serves during).
   */
  async importArchivedModel(
    model: ModelRecord,
    versions: readonly VersionRecord[],
    options: { readonly replaceUserData?: boolean; readonly evenIfDeleted?: boolean } = {},
  ): Promise<number | undefined> {
    const keys = this.keysOf(model.modelId);
    let counter = 0;
    for (let start = 0; start === 0 || start < versions.length; start += IMPORT_BATCH) {
      const args: (string | number)[] = [
        keys.base,
        JSON.stringify(model.userData),
        options.replaceUserData === true ? "1" : "0",
        this.options.expirationMs,
        options.evenIfDeleted === true ? "0" : "1",
      ];
      for (const version of versions.slice(start, start + IMPORT_BATCH)) {
        args.push(version.versionNumber, encodeImportedVersion(version));
      }
      counter = Number(await this.connection.runScript(IMPORT_ARCHIVED, [keys.model, keys.counter, keys.numbers, keys.generation], args));
      if (counter === -1) {
        return undefined; // deleted in this Redis (maybe between two batches: the deletion took the first ones)
      }
    }
    await this.connection.call(() => this.connection.commands.zadd(this.global.models, 0, model.modelId), this.global.models);
    return counter;
  }

  /**
   * Whether the archive was imported into this Redis (its data set: a Redis restarted without
   * persistence has lost the mark and must be imported again).
   */
  async archiveImported(): Promise<boolean> {
    return (await this.archiveImport()) !== undefined;
  }

  /**
   * The mark of the archive's import into this Redis, undefined when there is none: the single-mode
   * run the archive reflected then (see markArchiveImported), or the time of an import that had none.
   */
  async archiveImport(): Promise<string | undefined> {
    const key = this.global.archiveImported;
    return (await this.connection.call(() => this.connection.commands.get(key), key)) ?? undefined;
  }

  /** `singleModeRun`: the archive's mark of its last single-mode run, if it has one (else the time is written). */
  async markArchiveImported(singleModeRun?: string): Promise<void> {
    const key = this.global.archiveImported;
    await this.connection.call(() => this.connection.commands.set(key, singleModeRun ?? new Date().toISOString()), key);
  }

  /**
   * Takes the lease of the archive's import (one instance at a time brings Redis in line with the
   * archive); false when another instance holds it.
   */
  async beginArchiveSync(token: string, leaseMs: number): Promise<boolean> {
    const key = this.global.archiveSync;
    return (await this.connection.call(() => this.connection.commands.set(key, token, "PX", leaseMs, "NX"), key)) === "OK";
  }

  /** Extends the lease of the archive's import; false when `token` no longer holds it (it ran out). */
  async renewArchiveSync(token: string, leaseMs: number): Promise<boolean> {
    return Number(await this.connection.runScript(RENEW_LEASE, [this.global.archiveSync], [token, leaseMs])) === 1;
  }

  async endArchiveSync(token: string): Promise<void> {
    await this.connection.runScript(END_LEASE, [this.global.archiveSync], [token]);
  }

  // --- versions ---

  /** The uploads' chunk buffers: allocated so far, kept now (chunk-buffer-pool.ts). */
  chunkBufferStats(): ChunkBufferPoolStats {
    return this.chunkBuffers.stats;
  }

  /** Starts streaming an upload's data into Redis (transient versions); commit it with commitVersion. */
  beginVersionData(modelId: string, dataSize: number): VersionDataWriter {
    return new VersionDataWriter(this.connection, this.keysOf(modelId), dataSize, {
      chunkBytes: this.chunkBytes,
      pendingTtlMs: this.pendingTtlMs,
      maxChunksInFlight: this.maxChunksInFlight,
      buffers: this.chunkBuffers,
    });
  }

  /**
   * Commits a version: assigns the next number (unique and gap-free across instances), stores its
   * info, makes its data (uploaded with beginVersionData) visible at once, makes it the latest and
   * publishes it. `generation`: the model's generation when the upload began (NOT_FOUND if it was
   * deleted since). Without `data`, the version's bytes are not in Redis (an archived version).
   * `reservedUpTo` (with a claim): the archive's numbering records now reach that far (NumberClaim.reserved).
   */
  async commitVersion(
    version: NewVersion,
    generation: number,
    data?: UploadedData,
    claim?: NumberClaim,
    reservedUpTo?: number,
  ): Promise<StoredVersion> {
    const keys = this.keysOf(version.modelId);
    const mark = this.replication?.mark([keys.model]);
    const info = (await this.connection.runScript(
      COMMIT_VERSION,
      [keys.model, keys.generation, keys.counter, keys.numbers],
      [
        keys.base,
        String(generation),
        data?.uploadId ?? "",
        data?.chunkCount ?? 0,
        encodeVersionBody(version, data?.chunkCount ?? 0, data?.checksums),
        this.options.expirationMs,
        this.global.events,
        MAX_VERSION_NUMBER,
        ...(claim === undefined ? [] : [claim.token, claim.versionNumber, reservedUpTo ?? 0]),
      ],
    )) as string;
    const stored = decodeStoredVersion(info);
    await this.confirmReplicated(mark, () => `version ${stored.record.versionNumber} of model "${version.modelId}" is committed`, stored);
    return stored;
  }

  /**
   * Claims the model's next version number for one commit, across every instance (see CLAIM_NUMBER):
   * undefined when the model does not exist, "busy" when another commit holds the claim. The number
   * is taken only by commitVersion with this claim; releaseClaim (or the lease running out) gives it back.
   */
  async claimNumber(modelId: string, token: string, leaseMs: number): Promise<NumberClaim | "busy" | undefined> {
    const keys = this.keysOf(modelId);
    const [versionNumber, generation, reserved] = (await this.connection.runScript(
      CLAIM_NUMBER,
      [keys.model, keys.generation, keys.counter],
      [keys.base, token, leaseMs, MAX_VERSION_NUMBER],
    )) as [number, number, number];
    if (versionNumber === 0) {
      return undefined;
    }
    return versionNumber < 0 ? "busy" : { token, versionNumber, generation, reserved };
  }

  /** Extends a claim's lease; false when it is no longer held by `token` (it ran out). */
  async renewClaim(modelId: string, token: string, leaseMs: number): Promise<boolean> {
    const keys = this.keysOf(modelId);
    return Number(await this.connection.runScript(RENEW_CLAIM, [keys.model], [keys.base, token, leaseMs])) === 1;
  }

  async releaseClaim(modelId: string, token: string): Promise<void> {
    const keys = this.keysOf(modelId);
    await this.connection.runScript(RELEASE_CLAIM, [keys.model], [keys.base, token]);
  }

  /**
   * The claimed number cannot be used (the archive holds objects under it that are not this commit's):
   * numbering moves past it and the claim is released (see SKIP_NUMBER). `reservedUpTo`: how far the
   * archive's numbering records reach now. Whether it was skipped (false: the claim ran out and the
   * number is another commit's, or it was taken meanwhile).
   */
  async skipNumber(modelId: string, claim: NumberClaim, reservedUpTo: number): Promise<boolean> {
    const keys = this.keysOf(modelId);
    return Number(await this.connection.runScript(SKIP_NUMBER, [keys.model, keys.counter], [keys.base, claim.token, claim.versionNumber, reservedUpTo])) === 1;
  }

  /** The latest version numbered below `versionNumber` (numbers may have gaps: see skipNumber), if any. */
  async versionBefore(modelId: string, versionNumber: number): Promise<StoredVersion | undefined> {
    return versionNumber > 1 ? (await this.rangeOfVersions(modelId, versionNumber - 1, 1, "desc"))[0] : undefined;
  }

  async getVersion(modelId: string, versionNumber: number): Promise<StoredVersion | undefined> {
    const key = versionInfoKey(this.keysOf(modelId), versionNumber);
    const info = await this.connection.call(() => this.connection.commands.get(key), key);
    return info === null ? undefined : decodeStoredVersion(info);
  }

  /** Versions numbered `from` and up, in order, at most `count` (0: all). NOT_FOUND without the model. */
  listVersions(modelId: string, from: number, count: number): Promise<StoredVersion[]> {
    return this.rangeOfVersions(modelId, from, count, "asc");
  }

  /** The latest version, undefined when the model has none. NOT_FOUND without the model. */
  async latestVersion(modelId: string): Promise<StoredVersion | undefined> {
    return (await this.rangeOfVersions(modelId, MAX_VERSION_NUMBER, 1, "desc"))[0];
  }

  /**
   * What a follower of the model missed after `lastSeen` (e.g. while the subscriber connection was
   * down): every version above it, in order, the latest last. NOT_FOUND if the model was deleted.
   */
  catchUp(modelId: string, lastSeen: number): Promise<StoredVersion[]> {
    return this.listVersions(modelId, lastSeen + 1, 0);
  }

  /** A version's data copied in order into `sink` as it arrives (see copyVersionChunks). */
  copyVersionData(version: StoredVersion, sink: BulkSink): Promise<void> {
    const { modelId, versionNumber } = version.record;
    return copyVersionChunks(this.connection, this.keysOf(modelId), modelId, versionNumber, version.chunkCount, sink);
  }

  /** A version's data, chunk by chunk (at most two chunks held). */
  readVersionData(version: StoredVersion): AsyncGenerator<Buffer, void, undefined> {
    const { modelId, versionNumber } = version.record;
    return readVersionChunks(this.connection, this.keysOf(modelId), modelId, versionNumber, version.chunkCount);
  }

  private async rangeOfVersions(modelId: string, from: number, count: number, direction: "asc" | "desc"): Promise<StoredVersion[]> {
    const keys = this.keysOf(modelId);
    const infos = (await this.connection.runScript(LIST_VERSIONS, [keys.model, keys.numbers], [keys.base, from, count, direction])) as string[];
    return infos.map(decodeStoredVersion);
  }

  /** Removes an index entry whose model is gone, and puts it back if a create raced with the removal. */
  private async dropFromIndexIfGone(modelId: string): Promise<void> {
    await this.connection.call(() => this.connection.commands.zrem(this.global.models, modelId), this.global.models);
    if ((await this.getModel(modelId)) !== undefined) {
      await this.connection.call(() => this.connection.commands.zadd(this.global.models, 0, modelId), this.global.models);
    }
  }

  /** The replicas online (connected, in sync) on the primary (to each master of a Redis Cluster) now, from INFO replication. */
  async connectedReplicas(): Promise<{ readonly node: string; readonly replicas: number }[]> {
    const { commands } = this.connection;
    const nodes = commands instanceof Cluster ? commands.nodes("master") : [commands];
    return Promise.all(
      nodes.map(async (node) => {
        const info = await this.connection.call(() => node.info("replication"));
        // Replicas still syncing are listed too (state=wait_bgsave, send_bulk): only online ones acknowledge.
        const online = info.match(/^slave\d+:.*\bstate=online\b/gm)?.length ?? 0;
        return { node: commands instanceof Cluster ? `${node.options.host}:${node.options.port}` : this.connection.address, replicas: online };
      }),
    );
  }

  /**
   * With waitReplicas: WAIT on the nodes `mark` named before the write; throws ReplicationUnconfirmed
   * (UNAVAILABLE, carrying `outcome`) when the replicas did not all acknowledge it. `what`: "version 7
   * of model "m" is committed", for the message.
   */
  private async confirmReplicated<T>(mark: WriteMark | undefined, what: () => string, outcome: T): Promise<void> {
    const { replication } = this;
    if (replication === undefined || mark === undefined) {
      return;
    }
    const why = await replication.confirm(mark);
    if (why !== undefined) {
      const message = replication.unconfirmedMessage(what(), why);
      this.options.log?.warn({ redis: this.connection.address }, message);
      throw new ReplicationUnconfirmed(message, outcome);
    }
  }

  private keysOf(modelId: string): ModelKeys {
    return modelKeys(this.prefix, modelId);
  }
}
