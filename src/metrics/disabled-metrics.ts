import type { GrpcServerMetrics, MethodStats, ServerMetrics } from "./metrics-api.js";
import { splitMethodPath } from "./method-path.js";

const ignore = (): void => {};

/** Method stats that count nothing but still name the method (the call log uses the names). */
function uncountedMethods(): GrpcServerMetrics {
  const methods = new Map<string, MethodStats>();
  const method = (path: string): MethodStats => {
    let stats = methods.get(path);
    if (stats === undefined) {
      const [service, name] = splitMethodPath(path);
      stats = { service, method: name, started: ignore, received: ignore, sent: ignore, handled: ignore };
      methods.set(path, stats);
    }
    return stats;
  };
  return { method, initialize: (path) => void method(path) };
}

/** The metrics of a server whose metrics endpoint is off: nothing is counted, prom-client is never loaded. */
export function disabledServerMetrics(): ServerMetrics {
  return {
    grpc: uncountedMethods(),
    dataTransfer: { received: ignore, sent: ignore },
    timeArchiveWrites: (writer) => writer,
    peerLimits: { sessionClosed: ignore, connectionRefused: ignore },
    observe: ignore,
  };
}
