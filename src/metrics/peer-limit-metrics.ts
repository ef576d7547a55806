import { Counter, type Registry as MetricsRegistry } from "prom-client";
import type { PeerLimitCounts } from "./metrics-api.js";

const PREFIX = "cogment_model_registry_";

/** Counters of the per-peer-address stream limits (src/rpc/peer-limiter.ts). */
export function createPeerLimitMetrics(register: MetricsRegistry): PeerLimitCounts {
  const closed = new Counter({
    name: `${PREFIX}peer_sessions_closed_total`,
    help: "Client connections closed (GOAWAY ENHANCE_YOUR_CALM) because their peer address went over a stream limit, by limit.",
    labelNames: ["limit"] as const,
    registers: [register],
  });
  const refused = new Counter({
    name: `${PREFIX}peer_connections_refused_total`,
    help: "Client connections refused at once because their peer address is banned for going over a stream limit.",
    registers: [register],
  });
  const newStreams = closed.labels("new_streams");
  const cancelledStreams = closed.labels("cancelled_streams");
  newStreams.inc(0);
  cancelledStreams.inc(0);
  refused.inc(0);
  return {
    sessionClosed: (limit) => (limit === "new_streams" ? newStreams : cancelledStreams).inc(),
    connectionRefused: () => refused.inc(),
  };
}
