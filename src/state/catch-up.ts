import { performance } from "node:perf_hooks";
import { isNotFound } from "../errors/index.js";
import type { Logger } from "../logger.js";
import type { RedisRegistryStore } from "../redis/index.js";
import type { Announcements } from "./announcements.js";
import type { LossChecks } from "./loss-checks.js";

export interface CatchUpContext {
  readonly store: Pick<RedisRegistryStore, "generation" | "catchUp">;
  readonly announcements: Announcements;
  readonly lossChecks: LossChecks;
  readonly log: Logger;
}

/**
 * Models caught up at once. Each takes a few round trips one after another; ioredis pipelines the
 * concurrent ones on its connection, so an instance following thousands of models does not wait for
 * thousands of round trips in a row.
 */
export const CATCH_UP_CONCURRENCY = 16;

/**
 * After the subscriber connection was lost: what was published meanwhile, for every followed model
 * (each model's steps in order, CATCH_UP_CONCURRENCY models at a time). Whether every model was
 * caught up (false: some could not be read; the resume loop tries again).
 */
export async function catchUpFollowedModels(context: CatchUpContext): Promise<boolean> {
  const started = performance.now();
  let complete = true;
  let models = 0;
  // One live iterator shared by the workers: each model is taken once, models followed meanwhile too.
  const followed = context.announcements.followedModels();
  const worker = async (): Promise<void> => {
    for (let next = followed.next(); next.done !== true; next = followed.next()) {
      const [modelId, from] = next.value;
      models++;
      try {
        await catchUpModel(context, modelId, from);
      } catch (error) {
        complete = false;
        context.log.warn({ err: error, modelId }, "cannot catch up on a model's changes after the Redis subscription was lost; trying again");
      }
    }
  };
  await Promise.all(Array.from({ length: CATCH_UP_CONCURRENCY }, worker));
  context.log.info(
    { models, complete, ms: Math.round(performance.now() - started) },
    "caught up on the followed models' changes after the Redis subscription came back",
  );
  return complete;
}

/**
 * What one followed model missed after `lastSeen`: its deletion (its generation moved, or it is
 * gone), versions Redis lost (see LossChecks) or the versions published meanwhile. Throws when
 * Redis could not be read.
 */
async function catchUpModel({ store, announcements, lossChecks }: CatchUpContext, modelId: string, lastSeen: number): Promise<void> {
  const known = announcements.followedGeneration(modelId);
  // Read before the versions: they are of this generation or a later one (see Announcements.announceVersion).
  const generation = await store.generation(modelId);
  if (known !== undefined && generation > known) {
    if (generation > announcements.deletionsAnnounced(modelId)) {
      announcements.announceDeleted(modelId, generation); // ends its streams (NOT_FOUND) and drops it from the cache
      return;
    }
    announcements.followInGeneration(modelId, generation); // that deletion was announced already
  }
  await lossChecks.check(modelId);
  let missed;
  try {
    missed = await store.catchUp(modelId, announcements.catchUpFrom(modelId) ?? lastSeen);
  } catch (error) {
    if (isNotFound(error)) {
      announcements.announceDeleted(modelId, await store.generation(modelId));
      return;
    }
    throw error;
  }
  for (const version of missed) {
    announcements.announceVersion(version.record, generation);
  }
}
