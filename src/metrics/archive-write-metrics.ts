import { performance } from "node:perf_hooks";
import { Histogram, type Registry as MetricsRegistry } from "prom-client";
import type { ArchiveWriteTimer } from "./metrics-api.js";

/**
 * Wraps an archive writer so that `cogment_model_registry_archive_write_seconds` times its whole
 * version writes (writeVersionFilesAtomic: data and info files, fsync, rename; commitStreamedVersion).
 */
export function createArchiveWriteMetrics(register: MetricsRegistry): ArchiveWriteTimer {
  const histogram = new Histogram({
    name: "cogment_model_registry_archive_write_seconds",
    help: "Time to write a model version to the archive (data and info files, fsync and rename), failed writes included.",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [register],
  });
  const timed = async (write: () => Promise<void>): Promise<void> => {
    const start = performance.now();
    try {
      await write();
    } finally {
      histogram.observe((performance.now() - start) / 1000);
    }
  };
  // Every other method is passed through as it is (the writers are plain objects of functions).
  // A version streamed to disk is timed from its commit (flush, info file, renames), its data
  // having been written as it arrived.
  return (writer) => ({
    ...writer,
    writeVersionFilesAtomic: (request) => timed(() => writer.writeVersionFilesAtomic(request)),
    commitStreamedVersion: (request) => timed(() => writer.commitStreamedVersion(request)),
  });
}
