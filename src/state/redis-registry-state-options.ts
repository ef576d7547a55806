import type { ArchiveStore } from "../archive/index.js";
import type { Logger } from "../logger.js";
import type { RedisRegistryStore } from "../redis/index.js";
import type { ArchiveNumbering } from "./archive-numbering.js";

/** What createRedisRegistryState takes; its parts (redis-registry-state.ts) each pick what they need. */
export interface RedisRegistryStateOptions {
  readonly store: RedisRegistryStore;
  /** The archive every instance shares: archived versions' data, and what an empty Redis imports. */
  readonly archive: ArchiveStore;
  /** The archive's numbering records, kept at least as high as the numbers handed out (archive-numbering.ts). */
  readonly numbering: ArchiveNumbering;
  readonly log: Logger;
  /**
   * How long open() waits for Redis to be reachable before it lets the instance listen anyway (health
   * NOT_SERVING, calls UNAVAILABLE naming Redis); the start is finished once Redis is reachable.
   */
  readonly startWaitMs?: number;
  /** Pause before another attempt at finishing the start (subscribing, importing) after it failed with Redis up. */
  readonly resumeRetryMs?: number;
  /** A claim's lease, renewed while its commit goes on: a crashed instance's claim runs out after this. */
  readonly claimLeaseMs?: number;
  /** How long a commit waits for another instance's claim of the same model before it fails (UNAVAILABLE). */
  readonly claimWaitMs?: number;
  /**
   * A deletion's hold on the model (it cannot be created again) while its archive files are removed,
   * renewed meanwhile: a crashed deleter's hold runs out after this.
   */
  readonly deletionLeaseMs?: number;
}
