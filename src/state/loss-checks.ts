import type { Logger } from "../logger.js";
import type { RedisRegistryStore } from "../redis/index.js";
import type { Announcements } from "./announcements.js";
import { type LossReads, findLostVersion } from "./lost-versions.js";
import type { LostVersions } from "./registry-state.js";

/**
 * Whether Redis still holds the last version this instance announced or read of a model, as it
 * was; when it does not (Redis lost its last writes: restarted without persistence, a crash of its
 * host with appendfsync everysec, a failover to a replica that lacked them), what this instance
 * announced is reset to Redis's latest and onVersionsLost listeners are told (they end the model's
 * VersionUpdate streams and drop its cached data): a version committed later is announced, not taken
 * for one already announced. Redis's counter is raised to the last version seen (in the generation
 * this instance follows), so the lost numbers are never handed out again.
 */
export class LossChecks {
  /** Models whose check for lost versions is running, and those to check once more after it. */
  private readonly running = new Set<string>();
  private readonly again = new Set<string>();
  private stopped = false;

  constructor(
    private readonly store: LossReads & Pick<RedisRegistryStore, "connection" | "raiseCounterInGeneration">,
    private readonly announcements: Announcements,
    private readonly log: Logger,
  ) {}

  /** One check of the model (see the class). Throws when Redis could not be read. */
  async check(modelId: string): Promise<void> {
    const { announcements } = this;
    const last = announcements.lastSeen(modelId);
    if (last === undefined) {
      return;
    }
    const deletions = announcements.deletionsAnnounced(modelId);
    const loss = await findLostVersion(this.store, modelId, last, announcements.followedGeneration(modelId));
    if (loss === undefined || announcements.deletionsAnnounced(modelId) !== deletions) {
      return; // nothing lost, or a deletion announced meanwhile reset everything already
    }
    const { latest } = loss;
    const generation = announcements.followedGeneration(modelId);
    const counterBefore = generation === undefined ? undefined : await this.store.raiseCounterInGeneration(modelId, last.versionNumber, generation);
    if (announcements.deletionsAnnounced(modelId) !== deletions) {
      return; // deleted while the counter was raised: its deletion reset everything already
    }
    announcements.resetAfterLoss(modelId, latest);
    const lost: LostVersions = { modelId, lastSeen: last.versionNumber, latest: latest?.versionNumber ?? 0 };
    this.log.warn(
      { ...lost, redis: this.store.connection.address, ...(counterBefore === undefined ? {} : { counterRaisedFrom: counterBefore }) },
      "Redis no longer has the last version this instance announced or served of a model, as it was (Redis lost its last writes: a restart without persistence, or a crash with appendfsync everysec); the model's VersionUpdate streams on this instance end and its cached data is dropped, and numbering goes on above the last version seen",
    );
    announcements.announceLoss(lost);
  }

  /** check() in the background, one at a time per model; a failure leaves it to the next catch-up or notification. */
  suspect(modelId: string): void {
    if (this.running.has(modelId)) {
      this.again.add(modelId);
      return;
    }
    this.running.add(modelId);
    void (async () => {
      try {
        do {
          this.again.delete(modelId);
          await this.check(modelId);
        } while (this.again.has(modelId) && !this.stopped);
      } catch (error) {
        this.log.warn({ err: error, modelId }, "cannot check whether Redis lost versions of a model; the next catch-up or notification checks again");
      } finally {
        this.running.delete(modelId);
        this.again.delete(modelId);
      }
    })();
  }

  /** The state closes: a check running ends after its current round. */
  stop(): void {
    this.stopped = true;
  }
}
