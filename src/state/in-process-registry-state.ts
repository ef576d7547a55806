import type { ArchiveStore } from "../archive/index.js";
import { compareCodePoints } from "../code-point-order.js";
import { type ModelRecord, type VersionRecord, findVersion } from "../domain/index.js";
import { resourceExhausted } from "../errors/index.js";
import type { Logger } from "../logger.js";
import { readBootId } from "./boot-id.js";
import { recordSingleModeRun } from "./single-mode-run.js";
import type { RegistryState, VersionNumberClaim } from "./registry-state.js";
import { MAX_VERSION_NUMBER, VersionNumbering } from "./version-numbering.js";

export interface InProcessRegistryStateOptions {
  readonly archive: ArchiveStore;
  readonly log: Logger;
  /** The kernel's boot id; read from /proc at open when undefined (tests give one to simulate a reboot). */
  readonly bootId: string | undefined;
}

/**
 * The leftover clean-up starts this long after the model listing, in the background: off the path of
 * the start and the first calls (issue #15). It removes only temporary files changed before the state
 * opened (less CLOCK_TICK_MARGIN_MS), so never one of an upload of this process.
 */
const LEFTOVER_CLEANUP_DELAY_MS = 250;
/**
 * A file's ctime comes from the kernel's coarse clock, which can be a tick (10 ms at HZ=100) behind
 * Date.now(): a file written just after the cut-off can look older than it (up to 7 ms seen here).
 */
export const CLOCK_TICK_MARGIN_MS = 25;

/** Models whose numbering record is flushed at once at a graceful stop (bounds the open files). */
const STOP_RECORD_BATCH = 32;

/** What this process knows of one model; replaced as a whole when the model is deleted. */
interface ModelEntry {
  model: ModelRecord;
  /** Sorted by increasing number; appended in place (O(1) amortized), see RegistryState.listVersions. */
  readonly versions: VersionRecord[];
  loading: Promise<void> | undefined;
  loaded: boolean;
  readonly numbering: VersionNumbering;
}

/**
 * The registry's state in this process: model infos read from the archive at open, version infos
 * read from it per model on first use, numbering recorded beside them (version-numbering.ts), and
 * notifications called synchronously. The archive stays the durable source of model infos and
 * archived versions; transient versions' infos live here only.
 */
export function createInProcessRegistryState(options: InProcessRegistryStateOptions): RegistryState {
  const { archive, log } = options;
  const models = new Map<string, ModelEntry>();
  const committedListeners = new Set<(version: VersionRecord) => void>();
  const deletedListeners = new Set<(modelId: string) => void>();
  let sortedIds: string[] | undefined = undefined;
  // Byte order of UTF-8, like the original.
  const sortedModelIds = (): string[] => (sortedIds ??= [...models.keys()].sort(compareCodePoints));
  let bootId: string | undefined = options.bootId;
  let cleanupTimer: NodeJS.Timeout | undefined;
  // The model listing, started by open(). Every call that reads
  // the models waits for it (`if (!listed) await listing`: no extra turn once it is done).
  let listing: Promise<void> = Promise.resolve();
  let listed = false;
  // This run's mark in the archive (single-mode-run.ts), written by the run's first change, which
  // waits for it (`if (!runRecorded) await recordRun()`): nothing at start or for reads, and a run
  // that changes nothing leaves none (instances sharing a Redis have nothing of it to bring in).
  let runRecording: Promise<void> | undefined = undefined;
  let runRecorded = false;
  const recordRun = (): Promise<void> =>
    (runRecording ??= recordSingleModeRun(archive, log).then(() => {
      runRecorded = true; // also when it failed: warned once, the run goes on
    }));

  const newEntry = (model: ModelRecord): ModelEntry => ({
    model,
    versions: [],
    loading: undefined,
    loaded: false,
    numbering: new VersionNumbering(model.modelId, { archive, log, bootId }),
  });

  const ensureLoaded = (entry: ModelEntry): Promise<void> => {
    if (entry.loading === undefined) {
      entry.loading = loadVersions(entry).catch((error: unknown) => {
        entry.loading = undefined;
        throw error;
      });
    }
    return entry.loading;
  };

  /** The model's entry with its versions read (once the start-up listing is done); undefined for an unknown model. */
  const loadedEntry = async (modelId: string): Promise<ModelEntry | undefined> => {
    if (!listed) {
      await listing;
    }
    const entry = models.get(modelId);
    if (entry !== undefined) {
      await ensureLoaded(entry);
    }
    return entry;
  };

  const loadVersions = async (entry: ModelEntry): Promise<void> => {
    const { modelId } = entry.model;
    const [onDisk, saved] = await Promise.all([archive.listVersions(modelId), entry.numbering.readSaved()]);
    // Transient versions committed before the load cannot exist: claims load first.
    for (const version of onDisk) {
      entry.versions.push(version); // one by one: a spread of a long list overflows the call's arguments
    }
    entry.numbering.start(saved, onDisk[onDisk.length - 1]?.versionNumber ?? 0);
    entry.loaded = true;
  };

  /**
   * A model deletion failed part way: the archive may have lost some of the model's versions (their
   * infos go first) or, at the end, the model itself. What this process lists is made to match what is
   * left: archived versions no longer in the archive are dropped (all of them if it cannot be read).
   * The numbering is left as it is, and its records in the archive are deleted last: no number goes
   * back. Returns whether the model is still there (false: its deletion is complete after all).
   */
  const afterFailedDeletion = async (entry: ModelEntry): Promise<boolean> => {
    const { modelId } = entry.model;
    let left: { model: ModelRecord | undefined; versions: ReadonlySet<number> } | undefined;
    try {
      const [model, stored] = await Promise.all([archive.readModel(modelId), entry.loaded ? archive.listVersions(modelId) : []]);
      left = { model, versions: new Set(stored.map((version) => version.versionNumber)) };
    } catch (error) {
      log.warn(
        { module: "archive", modelId, error: error instanceof Error ? error.message : String(error) },
        "a model deletion failed and what is left of it could not be read: its archived versions are not listed until the next start",
      );
    }
    if (left?.model === undefined && left !== undefined) {
      return false;
    }
    const { versions } = entry;
    let kept = 0;
    for (const version of versions) {
      if (!version.archived || left?.versions.has(version.versionNumber) === true) {
        versions[kept++] = version;
      }
    }
    versions.length = kept;
    return true;
  };

  const announce = <T>(listeners: ReadonlySet<(value: T) => void>, value: T): void => {
    for (const listener of listeners) {
      listener(value);
    }
  };

  /** A claimed number: recorded, listed and announced at commit (see InProcessClaim). */
  const claim = (entry: ModelEntry, versionNumber: number): VersionNumberClaim =>
    new InProcessClaim(entry, versionNumber, committedListeners);

  /** The claim of a loaded model: no promise but the one returned, unless the durable mark is due. */
  const claimLoaded = (entry: ModelEntry): Promise<VersionNumberClaim> => {
    const versionNumber = entry.numbering.next;
    if (versionNumber > MAX_VERSION_NUMBER) {
      return Promise.reject(resourceExhausted(`model "${entry.model.modelId}" has used every version number up to ${MAX_VERSION_NUMBER}`));
    }
    const reserved = entry.numbering.reserve(versionNumber);
    return reserved === undefined ? Promise.resolve(claim(entry, versionNumber)) : reserved.then(() => claim(entry, versionNumber));
  };

  const claimAfterLoading = async (modelId: string): Promise<VersionNumberClaim | undefined> => {
    const entry = await loadedEntry(modelId);
    if (entry === undefined) {
      return undefined;
    }
    if (!runRecorded) {
      await recordRun();
    }
    if (models.get(modelId) !== entry) {
      return undefined; // deleted meanwhile
    }
    return claimLoaded(entry);
  };

  const openServing = async (): Promise<{ readonly listed: Promise<void> }> => {
    const throwFirstFailure = (outcomes: readonly PromiseSettledResult<unknown>[]): void => {
      for (const outcome of outcomes) {
        if (outcome.status === "rejected") {
          throw outcome.reason;
        }
      }
    };
    const readModels = async (): Promise<(ModelRecord | undefined)[]> => {
      const ids = await archive.listModelIds();
      return archive.readModels?.(ids) ?? Promise.all(ids.map((id) => archive.readModel(id)));
    };
    // Before anything of this process can write a temporary file: uploads wait for the listing.
    const changedBefore = Date.now() - CLOCK_TICK_MARGIN_MS;
    const [readBoot, opened] = await Promise.allSettled([bootId ?? readBootId(), archive.open()]);
    throwFirstFailure([readBoot, opened]);
    bootId = readBoot.status === "fulfilled" ? readBoot.value : undefined;
    listing = (async () => {
      for (const model of await readModels()) {
        if (model !== undefined) {
          models.set(model.modelId, newEntry(model));
        }
      }
      sortedIds = undefined;
      listed = true;
    })();
    // The clean-up of leftover temp files (a directory read per model) runs after the listing and the
    // first calls, in the background: it keeps every temporary file changed since the state opened,
    // so an upload of this process is never touched. A failure is logged; the start does not wait for it.
    listing.then(
      () => {
        cleanupTimer = setTimeout(() => {
          cleanupTimer = undefined;
          archive.removeLeftovers?.({ changedBefore })?.catch((error: unknown) => {
            log.warn({ module: "archive", error: error instanceof Error ? error.message : String(error) }, "leftover clean-up failed");
          });
        }, LEFTOVER_CLEANUP_DELAY_MS);
        cleanupTimer.unref();
      },
      () => {},
    );
    // Whoever needs it awaits it (calls, the server's start); this copy only keeps a failure that
    // nobody awaited yet from being an unhandled rejection.
    listing.catch(() => {});
    return { listed: listing };
  };

  return {
    openServing,

    async open() {
      await (await openServing()).listed;
    },

    async listModelIds() {
      if (!listed) {
        await listing;
      }
      return sortedModelIds();
    },

    async listModelIdPage(offset, count) {
      if (!listed) {
        await listing;
      }
      return sortedModelIds().slice(offset, count === 0 ? undefined : offset + count);
    },

    // Not async: every CreateVersion asks, and once listed the answer takes no turn of its own.
    getModel(modelId) {
      const read = (): ModelRecord | undefined => models.get(modelId)?.model;
      return listed ? Promise.resolve(read()) : listing.then(read);
    },

    getModels(modelIds) {
      const read = (): (ModelRecord | undefined)[] => modelIds.map((modelId) => models.get(modelId)?.model);
      return listed ? Promise.resolve(read()) : listing.then(read);
    },

    async putModel(model) {
      if (!listed) {
        await listing;
      }
      if (!runRecorded) {
        await recordRun();
      }
      await archive.writeModel(model);
      const entry = models.get(model.modelId);
      if (entry !== undefined) {
        entry.model = model;
        return false;
      }
      models.set(model.modelId, newEntry(model));
      sortedIds = undefined;
      return true;
    },

    async deleteModel(modelId) {
      if (!listed) {
        await listing;
      }
      if (!runRecorded) {
        await recordRun();
      }
      const entry = models.get(modelId);
      if (entry === undefined) {
        return false;
      }
      try {
        await archive.deleteModel(modelId);
      } catch (error) {
        if (await afterFailedDeletion(entry)) {
          throw error;
        }
      }
      models.delete(modelId);
      sortedIds = undefined;
      announce(deletedListeners, modelId);
      return true;
    },

    get modelCount() {
      return models.size;
    },

    async listVersions(modelId) {
      return (await loadedEntry(modelId))?.versions ?? [];
    },

    async findVersion(modelId, versionNumber) {
      const versions = (await loadedEntry(modelId))?.versions;
      if (versions === undefined) {
        return undefined;
      }
      return versionNumber === -1 ? versions[versions.length - 1] : findVersion(versions, versionNumber);
    },

    claimVersionNumber(modelId) {
      // The common case (listed, the model's versions read) takes no turn of its own; the contract
      // is the same: a promise, rejected rather than thrown.
      const entry = listed && runRecorded ? models.get(modelId) : undefined;
      if (entry?.loaded === true) {
        return claimLoaded(entry);
      }
      return claimAfterLoading(modelId);
    },

    // Async for the contract, but the removal happens before the first await: at once, as promised.
    async forgetTransientVersion(modelId, versionNumber) {
      const versions = models.get(modelId)?.versions;
      if (versions === undefined) {
        return undefined;
      }
      const index = versions.findIndex((version) => version.versionNumber === versionNumber);
      const version = versions[index];
      if (version === undefined || version.archived) {
        return undefined;
      }
      const wasLatest = index === versions.length - 1;
      versions.splice(index, 1);
      return wasLatest ? versions[versions.length - 1] : undefined;
    },

    onVersionCommitted(listener) {
      committedListeners.add(listener);
      return () => committedListeners.delete(listener);
    },

    onModelDeleted(listener) {
      deletedListeners.add(listener);
      return () => deletedListeners.delete(listener);
    },

    beginTransientData() {
      return undefined; // transient data lives only in this instance's cache
    },

    async openTransientData() {
      return undefined; // transient data lives only in this instance's cache
    },

    sharesTransientData: false,

    transientGoneReason: "the transient version was evicted from the cache",

    healthy: true,

    onHealth() {
      return () => {};
    },

    async close() {
      clearTimeout(cleanupTimer);
      await runRecording; // no write of this process goes on once it is closed (undefined: none began)
    },

    async recordStop() {
      await runRecording; // the run's mark too: nothing of this process is written after its stop
      const loaded = [...models.values()].filter((entry) => entry.loaded);
      for (let start = 0; start < loaded.length; start += STOP_RECORD_BATCH) {
        await Promise.all(loaded.slice(start, start + STOP_RECORD_BATCH).map((entry) => entry.numbering.recordStop()));
      }
    },
  };
}

/**
 * A claimed version number of the in-process state. The version's bytes are in place at commit:
 * its number is recorded (version-numbering.ts) before it is listed and announced, so no reader,
 * subscriber or uploader can learn of a number a crash of the process would hand out again.
 * A class, not an object of closures: a commit is the hot path of a small CreateVersion.
 */
class InProcessClaim implements VersionNumberClaim {
  constructor(
    private readonly entry: ModelEntry,
    readonly versionNumber: number,
    private readonly listeners: ReadonlySet<(version: VersionRecord) => void>,
  ) {}

  commit(version: VersionRecord): Promise<VersionRecord | undefined> {
    const recorded = this.entry.numbering.record(this.versionNumber);
    if (recorded !== undefined) {
      return recorded.then(() => this.handOut(version));
    }
    try {
      return Promise.resolve(this.handOut(version));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  abandon(numberSpent = false): void {
    // Otherwise nothing to undo: `next` moves on only at commit.
    if (numberSpent) {
      this.entry.numbering.skip(this.versionNumber);
    }
  }

  /** Recorded: the version is listed, then announced. Returns the previous latest. */
  private handOut(version: VersionRecord): VersionRecord | undefined {
    const { versions, numbering } = this.entry;
    const previous = versions[versions.length - 1];
    versions.push(version);
    numbering.handedOut(this.versionNumber);
    for (const listener of this.listeners) {
      listener(version);
    }
    return previous;
  }
}
