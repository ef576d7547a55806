import { Counter, type Registry as MetricsRegistry } from "prom-client";
import type { DataTransferCounts } from "./metrics-api.js";

/**
 * Version data bytes moved by the RPCs: upload data received (CreateVersion bodies) and version
 * data sent (RetrieveVersionData chunks). The hot path adds to plain numbers; the counters take
 * them at scrape time.
 */
export class DataTransferStats implements DataTransferCounts {
  #received = 0;
  #sent = 0;

  received(bytes: number): void {
    this.#received += bytes;
  }

  sent(bytes: number): void {
    this.#sent += bytes;
  }

  /** Returns the bytes received since the last call. */
  takeReceived(): number {
    const bytes = this.#received;
    this.#received = 0;
    return bytes;
  }

  /** Returns the bytes sent since the last call. */
  takeSent(): number {
    const bytes = this.#sent;
    this.#sent = 0;
    return bytes;
  }
}

export function createDataTransferMetrics(register: MetricsRegistry): DataTransferStats {
  const stats = new DataTransferStats();
  new Counter({
    name: "cogment_model_registry_version_data_received_bytes_total",
    help: "Model version data bytes received in CreateVersion bodies (including uploads that failed later).",
    registers: [register],
    collect() {
      this.inc(stats.takeReceived());
    },
  });
  new Counter({
    name: "cogment_model_registry_version_data_sent_bytes_total",
    help: "Model version data bytes handed to RetrieveVersionData streams.",
    registers: [register],
    collect() {
      this.inc(stats.takeSent());
    },
  });
  return stats;
}
