import type { Logger } from "../logger.js";
import type { RedisRegistryStore } from "../redis/index.js";

/**
 * With REDIS_WAIT_REPLICAS: whether the primary (each master of a Redis Cluster) has that many
 * replicas connected now, each time Redis becomes reachable. Fewer is a warning, not a refusal:
 * replicas may come later; meanwhile every write waits its timeout and fails UNAVAILABLE.
 */
export async function warnOfMissingReplicas(store: RedisRegistryStore, log: Logger): Promise<void> {
  const wanted = store.replication?.options.replicas ?? 0;
  if (wanted === 0) {
    return;
  }
  const { connection } = store;
  let counts;
  try {
    counts = await store.connectedReplicas();
  } catch (error) {
    log.warn({ err: error, redis: connection.address }, "cannot read how many replicas the Redis primary has (INFO replication)");
    return;
  }
  for (const { node, replicas } of counts) {
    if (replicas < wanted) {
      log.warn(
        { redis: connection.address, node, connectedReplicas: replicas, waitReplicas: wanted },
        `the Redis primary has ${replicas} connected replicas, fewer than COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS=${wanted}: until more replicas are connected, every commit, model change and deletion is done on the primary but fails UNAVAILABLE after the WAIT timeout`,
      );
    }
  }
}
