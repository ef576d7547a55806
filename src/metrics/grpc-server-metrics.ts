/*
 * The server metrics of go-grpc-prometheus, under the same names and labels, so existing
 * dashboards keep working:
 *   grpc_server_started_total{grpc_type,grpc_service,grpc_method}
 *   grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}
 *   grpc_server_handling_seconds{grpc_type,grpc_service,grpc_method} (histogram)
 *   grpc_server_msg_received_total{grpc_type,grpc_service,grpc_method}
 *   grpc_server_msg_sent_total{grpc_type,grpc_service,grpc_method}
 *
 * The hot path only adds to plain numbers of a per-method object found once per call: even a
 * cached prom-client label child re-hashes its labels (a new string) on every inc(). The counts
 * move into the prom-client counters when they are scraped, in their collect() callbacks.
 */
import { Counter, Histogram, type Registry as MetricsRegistry } from "prom-client";
import { GRPC_CODE_COUNT, grpcCodeName, normalizeGrpcCode } from "./grpc-code-name.js";
import type { GrpcServerMetrics, MethodStats } from "./metrics-api.js";
import { splitMethodPath } from "./method-path.js";

export type GrpcType = "unary" | "client_stream" | "server_stream" | "bidi_stream";

export function grpcType(requestStream: boolean, responseStream: boolean): GrpcType {
  if (requestStream) {
    return responseStream ? "bidi_stream" : "client_stream";
  }
  return responseStream ? "server_stream" : "unary";
}


type Labels = "grpc_type" | "grpc_service" | "grpc_method";

interface Counters {
  readonly started: Counter<Labels>;
  readonly handled: Counter<Labels | "grpc_code">;
  readonly received: Counter<Labels>;
  readonly sent: Counter<Labels>;
  readonly handling: Histogram<Labels>;
}

/** One method's counts since the last scrape, and its label children. */
export class GrpcMethodStats implements MethodStats {
  readonly type: GrpcType;
  readonly service: string;
  readonly method: string;
  #started = 0;
  #received = 0;
  #sent = 0;
  readonly #handled: number[] = new Array<number>(GRPC_CODE_COUNT).fill(0);
  readonly #handledChildren: (Counter.Internal | undefined)[] = new Array<Counter.Internal | undefined>(GRPC_CODE_COUNT).fill(undefined);
  readonly #startedChild: Counter.Internal;
  readonly #receivedChild: Counter.Internal;
  readonly #sentChild: Counter.Internal;
  readonly #handlingChild: Histogram.Internal<Labels>;

  constructor(
    type: GrpcType,
    service: string,
    method: string,
    private readonly counters: Counters,
  ) {
    this.type = type;
    this.service = service;
    this.method = method;
    this.#startedChild = counters.started.labels(type, service, method);
    this.#receivedChild = counters.received.labels(type, service, method);
    this.#sentChild = counters.sent.labels(type, service, method);
    this.#handlingChild = counters.handling.labels(type, service, method);
  }

  started(): void {
    this.#started++;
  }

  received(): void {
    this.#received++;
  }

  sent(): void {
    this.#sent++;
  }

  handled(code: number, seconds: number): void {
    const index = normalizeGrpcCode(code);
    this.#handled[index] = (this.#handled[index] as number) + 1;
    this.#handlingChild.observe(seconds);
  }

  /** Shows the method with zero counts before its first call (rate() needs a first sample). */
  initialize(): void {
    this.#startedChild.inc(0);
    this.#receivedChild.inc(0);
    this.#sentChild.inc(0);
    this.counters.handling.zero({ grpc_type: this.type, grpc_service: this.service, grpc_method: this.method });
  }

  flushStarted(): void {
    if (this.#started > 0) {
      this.#startedChild.inc(this.#started);
      this.#started = 0;
    }
  }

  flushReceived(): void {
    if (this.#received > 0) {
      this.#receivedChild.inc(this.#received);
      this.#received = 0;
    }
  }

  flushSent(): void {
    if (this.#sent > 0) {
      this.#sentChild.inc(this.#sent);
      this.#sent = 0;
    }
  }

  flushHandled(): void {
    for (let code = 0; code < GRPC_CODE_COUNT; code++) {
      const count = this.#handled[code] as number;
      if (count > 0) {
        let child = this.#handledChildren[code];
        if (child === undefined) {
          child = this.counters.handled.labels(this.type, this.service, this.method, grpcCodeName(code));
          this.#handledChildren[code] = child;
        }
        child.inc(count);
        this.#handled[code] = 0;
      }
    }
  }
}

/** Registers the grpc_server_* metrics in `register` (once per server). */
export function createGrpcServerMetrics(register: MetricsRegistry): GrpcServerMetrics {
  const methods = new Map<string, GrpcMethodStats>();
  const labelNames = ["grpc_type", "grpc_service", "grpc_method"] as const;
  const counters: Counters = {
    started: new Counter({
      name: "grpc_server_started_total",
      help: "Total number of RPCs started on the server.",
      labelNames,
      registers: [register],
      collect: () => methods.forEach((stats) => stats.flushStarted()),
    }),
    handled: new Counter({
      name: "grpc_server_handled_total",
      help: "Total number of RPCs completed on the server, regardless of success or failure.",
      labelNames: [...labelNames, "grpc_code"],
      registers: [register],
      collect: () => methods.forEach((stats) => stats.flushHandled()),
    }),
    received: new Counter({
      name: "grpc_server_msg_received_total",
      help: "Total number of RPC stream messages received on the server.",
      labelNames,
      registers: [register],
      collect: () => methods.forEach((stats) => stats.flushReceived()),
    }),
    sent: new Counter({
      name: "grpc_server_msg_sent_total",
      help: "Total number of gRPC stream messages sent by the server.",
      labelNames,
      registers: [register],
      collect: () => methods.forEach((stats) => stats.flushSent()),
    }),
    handling: new Histogram({
      name: "grpc_server_handling_seconds",
      help: "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
      labelNames,
      // Prometheus' default buckets, as go-grpc-prometheus uses.
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [register],
    }),
  };
  const method = (path: string, requestStream: boolean, responseStream: boolean): GrpcMethodStats => {
    let stats = methods.get(path);
    if (stats === undefined) {
      const [service, name] = splitMethodPath(path);
      stats = new GrpcMethodStats(grpcType(requestStream, responseStream), service, name, counters);
      methods.set(path, stats);
    }
    return stats;
  };
  return {
    method,
    initialize: (path, requestStream, responseStream) => method(path, requestStream, responseStream).initialize(),
  };
}
