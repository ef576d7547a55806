import type { ArchiveStore } from "../archive/index.js";
import type { VersionRecord } from "../domain/index.js";
import { EncodedVersionData } from "../data/index.js";
import { Code, RegistryError, resourceExhausted } from "../errors/index.js";
import { StreamedVersionUpload } from "./streamed-upload.js";
import type { OffThreadHashing } from "./streaming-hash.js";
import type { UploadHeader } from "./upload-header.js";
import type { TransientDataSink } from "../state/index.js";
import type { Reservation, VersionCache } from "./version-cache.js";
import type { VersionCommit } from "./version-commit.js";
import { type PendingUpload, VersionUpload } from "./version-upload.js";

export interface UploadPlannerOptions {
  readonly archive: ArchiveStore;
  readonly cache: VersionCache<EncodedVersionData>;
  readonly cacheMaxBytes: number;
  readonly chunkSize: number;
  /** Archived versions larger than cacheMaxBytes / this go straight to disk. */
  readonly archivedCacheShare: number;
  /** Memory an archived upload streamed to disk holds at most (one batch). */
  readonly streamedBatchBytes: number;
  hash(segments: readonly Uint8Array[]): Promise<string>;
  readonly offThreadHash: OffThreadHashing | undefined;
  /** 0 = no limit but the cache budget (transient) or the disk (archived). */
  readonly maxVersionBytes: number;
  readonly beforeAllocate: ((bytes: number) => void) | undefined;
  readonly dataReceived: ((bytes: number) => void) | undefined;
  /** A shared registry state's sink for a transient upload's bytes; undefined: they stay in this instance. */
  readonly beginTransientData: ((modelId: string, dataSize: number) => TransientDataSink | undefined) | undefined;
  now(): bigint;
}

/** The model an upload is for: the generation it began in, and where it commits. */
export interface UploadTarget {
  readonly generation: number;
  /** Whether the model was deleted since the upload began (its generation moved on). */
  modelDeleted(): boolean;
  commit(pending: VersionCommit): Promise<VersionRecord>;
}

/**
 * Chooses where an upload's bytes go and starts it. A transient version is held in memory (one
 * copy): it needs room for its whole size, and may evict other models' latests for it as a last
 * resort. An archived version is never refused for the budget: held in memory (and so cached for
 * readers) when it fits a share of the budget and the budget has room for it right now without
 * evicting a model's transient latest (which would lose it for good), streamed to disk otherwise.
 */
export class UploadPlanner {
  #inFlight = 0;
  /** Batch buffers of streamed archived uploads that the budget could not take. */
  #bytesOutsideBudget = 0;

  constructor(private readonly options: UploadPlannerOptions) {}

  get inFlight(): number {
    return this.#inFlight;
  }

  get bytesOutsideBudget(): number {
    return this.#bytesOutsideBudget;
  }

  /** Checks the size and reserves memory in the cache account. */
  begin(header: UploadHeader, target: UploadTarget): PendingUpload {
    const { maxVersionBytes, offThreadHash } = this.options;
    if (maxVersionBytes > 0 && header.dataSize > maxVersionBytes) {
      throw resourceExhausted(
        `data_size ${header.dataSize} is larger than the largest version this server accepts (COGMENT_MODEL_REGISTRY_VERSION_MAX_SIZE = ${maxVersionBytes} bytes)`,
      );
    }
    const totalBytes = EncodedVersionData.planTotalBytes(header.dataSize, this.options.chunkSize);
    const upload =
      header.archived && offThreadHash !== undefined
        ? this.#beginArchived(header, target, totalBytes, offThreadHash)
        : this.#beginInMemory(header, target, totalBytes, false);
    this.#inFlight++;
    return new CountedUpload(upload, this.options.dataReceived, () => this.#inFlight--);
  }

  #beginArchived(header: UploadHeader, target: UploadTarget, totalBytes: number, offThreadHash: OffThreadHashing): PendingUpload {
    if (totalBytes <= this.options.cacheMaxBytes / this.options.archivedCacheShare) {
      try {
        return this.#beginInMemory(header, target, totalBytes, true);
      } catch (error) {
        if (!(error instanceof RegistryError && error.code === Code.RESOURCE_EXHAUSTED)) {
          throw error;
        }
        // No room in the budget right now: to disk instead.
      }
    }
    return this.#beginStreamed(header, target, offThreadHash);
  }

  /** `keepPinnedTransient`: the upload can go to disk instead (see ReserveOptions). */
  #beginInMemory(header: UploadHeader, target: UploadTarget, totalBytes: number, keepPinnedTransient: boolean): PendingUpload {
    const { cache, chunkSize } = this.options;
    if (!Number.isSafeInteger(totalBytes)) {
      // data_size itself is a safe integer (validated); with the chunks' framing it may not be.
      throw resourceExhausted(
        `cannot hold data_size ${header.dataSize} bytes: the version cache budget (COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE) is ${this.options.cacheMaxBytes} bytes`,
      );
    }
    const { reservation, reused } = cache.reserveReusing(totalBytes, { keepPinnedTransient });
    let data: EncodedVersionData;
    try {
      if (reused !== undefined) {
        data = EncodedVersionData.reuse(reused, header.dataSize, chunkSize);
      } else {
        this.options.beforeAllocate?.(totalBytes);
        data = EncodedVersionData.allocate(header.dataSize, chunkSize);
      }
    } catch (error) {
      reservation.release();
      throw resourceExhausted(`cannot allocate ${header.dataSize} bytes for the version data: ${String(error)}`);
    }
    return new VersionUpload(header, data, reservation, {
      generation: target.generation,
      shared: header.archived ? undefined : this.options.beginTransientData?.(header.modelId, header.dataSize),
      hash: this.options.hash,
      now: this.options.now,
      commit: (pending) => target.commit(pending),
    });
  }

  /**
   * An archived upload streamed to disk holds one batch buffer (at most streamedBatchBytes), whatever
   * the version's size; the client's further bytes wait in its HTTP/2 stream window (flow control).
   * The batch is counted in the budget when the budget can take it without evicting a model's
   * transient latest, and held beside the budget otherwise (Status `upload_bytes_outside_budget`), so
   * the upload is never refused for it.
   */
  #beginStreamed(header: UploadHeader, target: UploadTarget, offThreadHash: OffThreadHashing): PendingUpload {
    const batchBytes = Math.max(1, Math.min(this.options.streamedBatchBytes, header.dataSize));
    return new StreamedVersionUpload(header, this.#reserveBatch(batchBytes), {
      generation: target.generation,
      modelDeleted: () => target.modelDeleted(),
      archive: this.options.archive,
      batchBytes,
      hash: offThreadHash.begin(),
      commit: (pending) => target.commit(pending),
      now: this.options.now,
    });
  }

  #reserveBatch(bytes: number): Reservation {
    try {
      return this.options.cache.reserve(bytes, { keepPinnedTransient: true });
    } catch (error) {
      if (!(error instanceof RegistryError && error.code === Code.RESOURCE_EXHAUSTED)) {
        throw error;
      }
    }
    this.#bytesOutsideBudget += bytes;
    let held = true;
    return {
      bytes,
      release: () => {
        if (held) {
          held = false;
          this.#bytesOutsideBudget -= bytes;
        }
      },
    };
  }
}

/** An upload counted in `inFlight` until it settles, the data it receives reported to the memory guard. */
class CountedUpload implements PendingUpload {
  readonly #upload: PendingUpload;
  readonly #dataReceived: ((bytes: number) => void) | undefined;
  #uncount: (() => void) | undefined;

  constructor(upload: PendingUpload, dataReceived: ((bytes: number) => void) | undefined, uncount: () => void) {
    this.#upload = upload;
    this.#dataReceived = dataReceived;
    this.#uncount = uncount;
  }

  get header(): UploadHeader {
    return this.#upload.header;
  }

  append(chunk: Uint8Array): void | Promise<void> {
    this.#dataReceived?.(chunk.byteLength);
    return this.#upload.append(chunk);
  }

  finish(): Promise<VersionRecord> {
    return this.#upload.finish().then(
      (version) => {
        this.#settled();
        return version;
      },
      (error: unknown) => {
        this.#settled();
        throw error;
      },
    );
  }

  abort(): void {
    this.#settled();
    this.#upload.abort();
  }

  #settled(): void {
    const uncount = this.#uncount;
    if (uncount !== undefined) {
      this.#uncount = undefined;
      uncount();
    }
  }
}
