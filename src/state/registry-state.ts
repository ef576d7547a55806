import type { PlacementFence } from "../archive/index.js";
import type { ModelRecord, VersionRecord } from "../domain/index.js";

/**
 * Where the registry's shared state lives: model infos, version numbering, version infos and the
 * notifications of their changes. The embedded default keeps it in this process (backed by the
 * archive, see in-process-registry-state.ts); a shared backend (several server instances acting as
 * one registry) implements the same contract, and rpc/ and the model actors never learn which one
 * is behind it. Version data is not part of it: archived bytes live in the ArchiveStore, transient
 * bytes in each instance's VersionCache.
 *
 * The contract:
 * - Within one instance, the model's actor serializes the writes of a model (putModel, deleteModel,
 *   claimVersionNumber … claim.commit/abandon): at most one claim per model is open at a time in an
 *   instance. Across instances, the implementation is what keeps numbers unique and gap-free
 *   (e.g. an atomic counter or a script per model): two claims of one model never hold the same
 *   number, and a number is handed out (listed, announced) only by a successful `commit`.
 * - Read your writes: once a write's promise resolved, every read of any instance sees it.
 * - Durable: model infos and archived versions' infos survive a restart (the archive holds them);
 *   transient versions' infos last as long as their data. Numbering never hands out again a number
 *   of a version a client may have seen, even after a crash (the embedded default: see
 *   version-numbering.ts for its guarantees).
 * - Notifications are delivered to every instance, in version-number order per model, after the
 *   change is readable; the embedded default calls the listeners synchronously, inside the write.
 *   A listener must not throw.
 * - Failures reject with the error of the backend (a RegistryError with its status, or an errno
 *   error the RPC edge maps); a backend that cannot be reached fails fast, it does not hang.
 */
export interface RegistryState {
  /**
   * Before any other call: loads what must be known at once (the model infos). A shared backend that
   * cannot be reached yet resolves anyway, with `healthy` false: its calls fail UNAVAILABLE until it
   * is reachable and has finished its start by itself (then `healthy` turns true).
   */
  open(): Promise<void>;
  /**
   * open() in two steps, for a server that listens before the model listing ends (issue #15,
   * start-up): resolves once the rest of open() is done, to `listed`, which settles as open() would
   * have once the listing ended. Meanwhile every call that needs the listing waits for it. Optional:
   * a state without it is opened with open().
   */
  openServing?(): Promise<{ readonly listed: Promise<void> }>;

  /** Every model id, sorted by code point (the byte order of UTF-8, as the original server pages them). */
  listModelIds(): Promise<readonly string[]>;
  /**
   * The ids of listModelIds from position `offset`, at most `count` (0: all to the end): a page of
   * RetrieveModels without reading every id (a shared backend reads just the page).
   */
  listModelIdPage(offset: number, count: number): Promise<readonly string[]>;
  getModel(modelId: string): Promise<ModelRecord | undefined>;
  /**
   * getModel at the begin of an upload, with the model's generation (its count of deletions) read
   * with it: pass it to claimVersionNumber, which refuses the upload if the model was deleted (and
   * maybe created again) since, even when this instance has not heard of the deletion yet (a shared
   * backend announces another instance's deletion late). Optional: a state whose deletions are
   * announced inside the call (the embedded default) needs no more than the actor's own count.
   */
  getModelForUpload?(modelId: string): Promise<{ readonly model: ModelRecord; readonly generation: number } | undefined>;
  /**
   * The models of `modelIds`, in order (undefined where there is none): one lookup for them all, not
   * a promise per id (RetrieveModels may name 100000 ids).
   */
  getModels(modelIds: readonly string[]): Promise<readonly (ModelRecord | undefined)[]>;
  /** Creates or replaces a model info, durably; resolves to whether it was created. */
  putModel(model: ModelRecord): Promise<boolean>;
  /**
   * Removes a model: its info, its versions (infos and archived data) and its numbering (a model
   * created again under the same id starts at 1). Resolves to false when there was no such model;
   * when there was, onModelDeleted listeners were called before it resolves.
   */
  deleteModel(modelId: string): Promise<boolean>;
  /** How many models this instance knows of (Status, metrics); for a shared backend it may lag. */
  readonly modelCount: number;

  /**
   * The model's versions sorted by increasing number (empty for an unknown model); archived ones
   * are read from the archive on first use. The array is the state's own: read it, do not keep it
   * across an await (it may grow meanwhile), never change it.
   */
  listVersions(modelId: string): Promise<readonly VersionRecord[]>;
  /**
   * One version: `versionNumber` > 0 that one, -1 the latest; undefined when it is not there (or the
   * model is unknown). What listVersions would give for it, without reading every version: a shared
   * backend answers a poll of the latest in one small read however many versions the model has.
   */
  findVersion(modelId: string, versionNumber: number): Promise<VersionRecord | undefined>;
  /**
   * Claims the model's next version number, before its bytes are stored under it; undefined when
   * there is no such model, or when `generation` (getModelForUpload's, as the upload began) is not
   * the model's any more: it was deleted meanwhile. Rejects with RESOURCE_EXHAUSTED when every
   * number was used.
   */
  claimVersionNumber(modelId: string, generation?: number): Promise<VersionNumberClaim | undefined>;
  /**
   * A transient version's data is gone for good (evicted from the instance's cache): it is no longer
   * listed, at once (a shared backend that keeps the data itself ignores this). Archived versions and unknown numbers are ignored. Resolves to the version that
   * became the model's latest by this removal, if any (its data should now be kept: it is pinned).
   */
  forgetTransientVersion(modelId: string, versionNumber: number): Promise<VersionRecord | undefined>;

  /** Calls `listener` with every committed version, in number order per model; returns the unsubscribe function. */
  onVersionCommitted(listener: (version: VersionRecord) => void): () => void;
  /** Calls `listener` with the id of every deleted model; returns the unsubscribe function. */
  onModelDeleted(listener: (modelId: string) => void): () => void;
  /**
   * Calls `listener` when the backend noticed it lost versions it had announced (a shared backend
   * that lost its last writes): versions announced before may be gone or named by other commits
   * now, and later ones may reuse their numbers. Returns the unsubscribe function. Optional: the
   * embedded default never loses an announced version without a restart of the process.
   */
  onVersionsLost?(listener: (loss: LostVersions) => void): () => void;

  /**
   * Where a transient upload's bytes go as they arrive when this state shares transient data between
   * instances (pass the sink to claim.commit); undefined when it does not (the embedded default).
   */
  beginTransientData(modelId: string, dataSize: number): TransientDataSink | undefined;

  /**
   * A transient version's data, read from where this state shares it between instances (the read
   * through of a cache miss); undefined when the state keeps no transient data (the embedded default:
   * it lives only in the instance's cache) or the version is gone.
   */
  openTransientData(version: VersionRecord): Promise<TransientDataSource | undefined>;
  /**
   * Whether transient versions' data lives in this state, shared between instances: the instance's
   * cache then holds copies, which it may drop whenever it likes (a read goes through again).
   */
  readonly sharesTransientData: boolean;
  /** Why a transient version listed a moment ago has no data, for NOT_FOUND's message ("the transient version was …"). */
  readonly transientGoneReason: string;

  /** Whether the backend can be reached (the embedded default always can); health reports it. */
  readonly healthy: boolean;
  /** Calls `listener` whenever `healthy` changes; returns the unsubscribe function. */
  onHealth(listener: (healthy: boolean) => void): () => void;

  /**
   * At a graceful stop, once no claim is open: makes durable what lets the next start resume
   * exactly (the embedded default: each loaded model's next number, marked clean). Idempotent.
   */
  recordStop(): Promise<void>;

  /** Releases the backend's connections (last, after recordStop). Idempotent. */
  close(): Promise<void>;
}

/** What a shared backend noticed it lost of a model (see RegistryState.onVersionsLost). */
export interface LostVersions {
  readonly modelId: string;
  /** The last version this instance announced or served, which the backend no longer has as it was. */
  readonly lastSeen: number;
  /** The model's latest version in the backend now (0: none). */
  readonly latest: number;
}

/** A version number claimed for a version being stored (see RegistryState.claimVersionNumber). */
export interface VersionNumberClaim {
  readonly versionNumber: number;
  /**
   * Where several instances number the model: what the archive confirms right before it puts the
   * version's files under their final names, so that a writer whose claim ran out (paused, cut off
   * from the shared state) never puts its files where the number's next holder puts its own. Its
   * confirm() is a round trip to the shared state; undefined where one instance numbers alone.
   */
  readonly fence?: PlacementFence;
  /**
   * The version's bytes are in place: records its number and makes the version visible (listed,
   * then announced to onVersionCommitted listeners). `version.versionNumber` must be the claimed
   * number. Resolves to the version that was the latest until this one, if any. `transientData`: the
   * sink (beginTransientData) that received a transient version's bytes, made visible with it.
   * Whether it resolves or rejects, the claim is over (no abandon needed).
   */
  commit(version: VersionRecord, transientData?: TransientDataSink): Promise<VersionRecord | undefined>;
  /**
   * The version could not be stored: nothing is handed out, and the model's next claim gets the same
   * number, unless `numberSpent` (the store may hold objects of the version under this number: see
   * isNumberSpent in archive/): then it gets a later one, so the number never names other bytes.
   */
  abandon(numberSpent?: boolean): void;
}

/** A transient upload's bytes on their way to a shared backend (see RegistryState.beginTransientData). */
/** A transient version's bytes where a shared state keeps them; each read checks them against data_hash (DATA_LOSS). */
export interface TransientDataSource {
  /**
   * Hands over the whole data in order, in pieces of any size, each valid only during the call (copy
   * it): the way to fill a buffer with no intermediate copies. `verified` tells how many leading bytes
   * may be served (those checked so far, when the check can tell before the end). Resolves once every
   * byte was handed over and checked; rejects with DATA_LOSS when one did not match.
   */
  copyTo(write: (piece: Uint8Array) => void, verified: (leadingBytes: number) => void): Promise<void>;
  /** The data in pieces the caller may keep, a few at a time (for a reader with nowhere to copy it). */
  stream(): AsyncIterable<Uint8Array>;
}

export interface TransientDataSink {
  /** Takes the next bytes (copied); resolves when it can take more (backpressure). Once it settled, it keeps no reference to `data`. */
  append(data: Uint8Array): Promise<void>;
  /** The upload failed or was cancelled: what was written goes away (best effort). Idempotent. */
  abort(): void;
}
