import { cutText } from "../cut-text.js";
import { type ArchiveStore, META_WRITTEN } from "../archive/index.js";
import type { Logger } from "../logger.js";
import { writeFailureFields } from "./write-failure-fields.js";

/** The durable mark is written this many numbers ahead (see reserve). */
export const VERSION_NUMBER_BLOCK = 1024;
export const MAX_VERSION_NUMBER = 0xffff_ffff; // version_number is a uint32 on the wire
/** `.cogment-ts-next-version`: numbers below it may have been handed out. fsync'd, a block ahead. */
const MARK_KEY = "next-version";
/** `.cogment-ts-version-record`: the exact next number, written at every commit (see record). */
const RECORD_KEY = "version-record";
/**
 * The boot id in a record written by instances sharing a Redis (writeSharedReservation): no kernel's
 * boot id (those are UUIDs), and never "stopped", so a single-mode start never takes it as exact.
 */
export const SHARED_RECORD_BOOT = "shared-redis";

export interface NumberingContext {
  readonly archive: ArchiveStore;
  readonly log: Logger;
  /** The kernel's boot id (see boot-id.ts); undefined where there is none. */
  readonly bootId: string | undefined;
}

/** The exact record: the next number, the boot it was written in, and whether the server stopped cleanly after it. */
interface ExactRecord {
  readonly next: number;
  readonly bootId: string;
  readonly stopped: boolean;
}

/** What the archive remembers of a model's numbering. */
export interface SavedNumbering {
  readonly mark: number | undefined;
  readonly record: ExactRecord | undefined;
}

type Recorded = "mark" | "record";

const DURABLE_WRITE = { durable: true } as const;
const PAGE_CACHE_WRITE = { durable: false } as const;

/**
 * A model's version numbering across restarts. Two records, both dotfiles in the model's directory:
 * - the exact record (next number, boot id, running/stopped), overwritten in place at every commit
 *   without fsync: it reaches the page cache, which survives a crash of the process but not of the
 *   machine. It is trusted when it says the server stopped cleanly (then it was fsync'd) or when it
 *   was written in the current boot (the machine did not restart since);
 * - the durable mark, fsync'd, written a block of numbers ahead: after a crash of the machine,
 *   numbering continues above it, skipping what was not handed out but never reusing a number.
 * Without either (an archive of the original server), numbering continues after the highest
 * version on disk, as the original does.
 *
 * On an archive whose metadata writes are requests to a remote store (S3: `remoteMeta`), a commit
 * does not wait for its record: once the run's first "running" record is acknowledged (until then a
 * "stopped" one of the last run may be in the store, and it is trusted), records go out in the
 * background, one request at a time, the newest value next. A record can then lag behind what was
 * handed out, so after a start a "running" record is never exact: numbering continues above the
 * durable mark, which is still awaited before any number it does not cover. Only a clean stop (its
 * record written after the background ones) gives an exact restart.
 */
export class VersionNumbering {
  /** The number the next commit gets. */
  next = 1;
  /** Numbers below this are covered by the durable mark or by versions on disk. */
  private reservedUpTo = 0;
  /** Whether a "running" record was flushed to disk since the load; until then a stale "stopped" one may be on disk. */
  private recordFlushed = false;
  /** What the record on disk says, as far as this process knows (recordedNext undefined: nothing known). */
  private recordedNext: number | undefined = undefined;
  private recordedStopped = false;
  private started = false;
  private readonly warned = new Set<Recorded>();
  /** Remote records: the background writer while it runs, and the newest value it has still to write. */
  private backgroundRecords: Promise<void> | undefined = undefined;
  private pendingNext: number | undefined = undefined;

  constructor(
    private readonly modelId: string,
    private readonly context: NumberingContext,
  ) {}

  async readSaved(): Promise<SavedNumbering> {
    const { archive, log } = this.context;
    const [markText, recordText] = await Promise.all([
      archive.readMeta(this.modelId, MARK_KEY),
      archive.readMeta(this.modelId, RECORD_KEY),
    ]);
    const mark = parseMark(markText);
    if (markText !== undefined && mark === undefined) {
      log.warn({ modelId: this.modelId, value: cutText(markText, 64) }, "ignoring an unreadable version high-water mark");
    }
    const record = parseRecord(recordText);
    if (recordText !== undefined && record === undefined) {
      log.warn({ modelId: this.modelId, value: recordText.slice(0, 128) }, "ignoring an unreadable version-number record");
    }
    return { mark, record };
  }

  /** Sets the next number from what was saved and the highest version number on disk (0 if none). */
  start(saved: SavedNumbering, highestOnDisk: number): void {
    const { mark, record } = saved;
    const afterDisk = highestOnDisk + 1;
    const remote = this.context.archive.remoteMeta === true;
    const shared = record?.bootId === SHARED_RECORD_BOOT;
    const exact = record !== undefined && !shared && (record.stopped || (!remote && record.bootId === this.context.bootId));
    if (record !== undefined && exact) {
      this.next = Math.max(record.next, afterDisk);
    } else {
      this.next = Math.max(afterDisk, record?.next ?? 0, mark ?? 0);
      if (this.next > afterDisk) {
        this.context.log.info(
          {
            modelId: this.modelId,
            nextVersion: this.next,
            highestOnDisk,
            recordedNext: record?.next,
            reason:
              record === undefined
                ? "no exact record of the last number (an archive of an earlier version of this server, or it could not be written)"
                : shared
                  ? "the last numbers were handed out by instances sharing a Redis (COGMENT_MODEL_REGISTRY_REDIS_URL), which record them a block ahead"
                  : remote
                  ? "the server had not stopped cleanly, and the record in the object store is written in the background: it may lag"
                  : "the machine restarted since the last number was recorded, and the server had not stopped cleanly",
          },
          "version numbering continues above the durable mark: numbers in between are skipped, none is reused",
        );
      }
    }
    this.reservedUpTo = Math.max(mark ?? 0, afterDisk);
    this.recordedNext = record?.next;
    this.recordedStopped = record?.stopped ?? false;
    this.recordFlushed = false;
    this.started = true;
  }

  /**
   * Before `versionNumber` is handed out: makes sure the durable mark covers it, a block ahead,
   * so a crash of the machine never leads to reusing it. Undefined when the mark already does
   * (every commit but one in VERSION_NUMBER_BLOCK): nothing to wait for.
   */
  reserve(versionNumber: number): Promise<void> | undefined {
    if (versionNumber < this.reservedUpTo) {
      return undefined;
    }
    const mark = Math.min(versionNumber + VERSION_NUMBER_BLOCK, MAX_VERSION_NUMBER + 1);
    const failed = (error: unknown): void =>
      this.warnOnce(
        "mark",
        error,
        `could not write the version-number mark: versions are still numbered and served, but after a crash${
          this.context.archive.remoteMeta === true ? "" : " of the machine (not of the process)"
        } the server may hand out again numbers of transient versions created from now on`,
      );
    let written: Promise<void>;
    try {
      written = this.context.archive.writeMeta(this.modelId, MARK_KEY, String(mark));
    } catch (error) {
      // A store that throws instead of rejecting: the same warning, never a failed commit.
      failed(error);
      return undefined;
    }
    return written.then(() => {
      this.reservedUpTo = mark;
      this.warned.delete("mark");
    }, failed);
  }

  /**
   * `versionNumber` is stored and about to be handed out: records the next number in the page
   * cache (flushed to disk the first time after a load). Never fails: what cannot be recorded is
   * logged once. Undefined when the record was written at once (the archive directory's page-cache
   * write, every commit but the first of a run): nothing to wait for. `next` moves on at `handedOut`.
   */
  record(versionNumber: number): Promise<void> | undefined {
    if (this.context.archive.remoteMeta === true && this.recordFlushed) {
      this.pendingNext = versionNumber + 1;
      this.backgroundRecords ??= this.writeInBackground();
      return undefined;
    }
    return this.writeRecord(versionNumber + 1, false);
  }

  /** Writes the newest pending record until none is left; never rejects (writeRecord logs failures). */
  private async writeInBackground(): Promise<void> {
    for (let next = this.pendingNext; next !== undefined; next = this.pendingNext) {
      this.pendingNext = undefined;
      await this.writeRecord(next, false);
    }
    this.backgroundRecords = undefined; // in the same turn as the last check: no value is left behind
  }

  /** `versionNumber` is visible: the next commit gets the number after it. */
  handedOut(versionNumber: number): void {
    this.next = versionNumber + 1;
  }

  /**
   * `versionNumber` was not handed out, but the store may hold objects under it (a failed commit):
   * the next commit gets the number after it. Not recorded on its own: the next commit's record covers
   * it, and until then (a crash in between) a claim of it again finds the store's objects and fails
   * or overwrites a leftover, never serving other bytes under a number a client saw.
   */
  skip(versionNumber: number): void {
    this.next = Math.max(this.next, versionNumber + 1);
  }

  /** At a graceful stop, once no more commits run: flushes the exact record to disk, marked clean. */
  async recordStop(): Promise<void> {
    // The background records first: none may land after the "stopped" one.
    while (this.backgroundRecords !== undefined) {
      await this.backgroundRecords;
    }
    const unchanged = this.recordedStopped && this.recordedNext === this.next;
    if (this.started && !unchanged) {
      await this.writeRecord(this.next, true);
    }
  }

  /** Written at every commit: no object, promise or closure per call when the archive writes at once. */
  private writeRecord(next: number, stopped: boolean): Promise<void> | undefined {
    // A "running" record must reach the disk once before the next ones may stay in the page cache:
    // otherwise a crash of the machine could leave an older "stopped" record there, and it is trusted.
    const durable = stopped || !this.recordFlushed;
    let written: Promise<void>;
    try {
      written = this.context.archive.overwriteMeta(
        this.modelId,
        RECORD_KEY,
        formatRecord(next, this.context.bootId ?? "-", stopped),
        durable ? DURABLE_WRITE : PAGE_CACHE_WRITE,
      );
    } catch (error) {
      this.recordFailed(error); // a store that throws instead of rejecting
      return undefined;
    }
    if (written === META_WRITTEN) {
      this.recordWritten(next, stopped);
      return undefined;
    }
    return written.then(
      () => this.recordWritten(next, stopped),
      (error: unknown) => this.recordFailed(error),
    );
  }

  private recordWritten(next: number, stopped: boolean): void {
    this.recordedNext = next;
    this.recordedStopped = stopped;
    this.recordFlushed = !stopped;
    if (this.warned.size > 0) {
      this.warned.delete("record");
    }
  }

  private recordFailed(error: unknown): void {
    this.warnOnce(
      "record",
      error,
      "could not record the next version number: versions are still numbered and served, but after a restart the server may hand out again numbers of transient versions created from now on (archived versions keep theirs)",
    );
  }

  /** Once per model and record until a write of it succeeds again: the path, the errno and what it means. */
  private warnOnce(what: Recorded, error: unknown, message: string): void {
    if (this.warned.has(what)) {
      return;
    }
    this.warned.add(what);
    this.context.log.warn(
      {
        modelId: this.modelId,
        file: what === "mark" ? `.cogment-ts-${MARK_KEY}` : `.cogment-ts-${RECORD_KEY}`,
        ...writeFailureFields(error),
      },
      message,
    );
  }
}

/**
 * Shared mode (several instances on one Redis, which holds the numbering): raises the archive's
 * numbering records of `modelId` to `upTo`, so that a single-mode server started later on this
 * archive numbers from `upTo` on and never hands out again a number the shared instances did (a
 * transient version leaves no file to continue after). The caller writes a block ahead of the numbers
 * it hands out, as `reserve` does, and only ever raises `upTo`. The record first, marked with
 * SHARED_RECORD_BOOT: never exact, it replaces an exact one a single-mode run left (which would win
 * over the mark) and alone already keeps a later start at or above `upTo`; then the durable mark.
 * Rejects when either write fails.
 */
export async function writeSharedReservation(archive: ArchiveStore, modelId: string, upTo: number): Promise<void> {
  await archive.overwriteMeta(modelId, RECORD_KEY, formatRecord(upTo, SHARED_RECORD_BOOT, false), DURABLE_WRITE);
  await archive.writeMeta(modelId, MARK_KEY, String(upTo));
}

function parseMark(text: string | undefined): number | undefined {
  const trimmed = text?.trim();
  if (trimmed === undefined || !/^[0-9]{1,10}$/.test(trimmed)) {
    return undefined;
  }
  const mark = Number(trimmed);
  return mark <= MAX_VERSION_NUMBER + 1 ? mark : undefined;
}

const RECORD_PATTERN = /^next=([0-9]{1,10}) boot=([0-9A-Za-z-]{1,64}) state=(running|stopped)$/;

function formatRecord(next: number, bootId: string, stopped: boolean): string {
  return `next=${next} boot=${bootId} state=${stopped ? "stopped" : "running"}`;
}

function parseRecord(text: string | undefined): ExactRecord | undefined {
  const match = text === undefined ? null : RECORD_PATTERN.exec(text.trim());
  if (match === null) {
    return undefined;
  }
  const [, next = "", bootId = "", state] = match;
  const number = Number(next);
  if (number < 1 || number > MAX_VERSION_NUMBER + 1) {
    return undefined;
  }
  return { next: number, bootId, stopped: state === "stopped" };
}
