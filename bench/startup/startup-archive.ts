/**
 * Writes an archive directory in the original Go registry's layout, without the
 * server's code (so the bench also checks that the server reads what the original wrote):
 *
 *   <dir>/<model>/<model>.yaml                 model_id, user_data
 *   <dir>/<model>/<model>-v000001.yaml         model_id, version_number, creation_timestamp
 *                                              (RFC 3339, Go's RFC3339Nano), data_hash (base64
 *                                              SHA-256), data_size, user_data
 *   <dir>/<model>/<model>-v000001.data         the bytes
 */
import { createHash, randomBytes, randomInt } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface GeneratedVersion {
  readonly modelId: string;
  readonly versionNumber: number;
  readonly hash: string;
  readonly size: number;
  /** Nanoseconds since the epoch, as the wire's fixed64 (a decimal string). */
  readonly creationTimestampNs: string;
  readonly step: string;
}

export interface GeneratedArchive {
  readonly modelIds: readonly string[];
  readonly versions: number;
  readonly bytes: number;
  readonly seconds: number;
  /** Every model's first and last version, to check what the server serves. */
  readonly samples: ReadonlyMap<string, readonly GeneratedVersion[]>;
}

const WRITE_CONCURRENCY = 64;
const BASE_EPOCH_SECONDS = Date.UTC(2021, 9, 1, 20, 10, 5) / 1000;

export function modelIdOf(index: number): string {
  return `startup-model-${String(index).padStart(3, "0")}`;
}

/** Go's time.RFC3339Nano in UTC: trailing zeros of the fraction trimmed, no fraction when it is 0. */
function rfc3339Nano(epochSeconds: number, nanos: number): string {
  const base = new Date(epochSeconds * 1000).toISOString().slice(0, 19);
  const fraction = nanos === 0 ? "" : `.${String(nanos).padStart(9, "0").replace(/0+$/, "")}`;
  return `${base}${fraction}Z`;
}

function versionFileBase(modelId: string, versionNumber: number): string {
  return `${modelId}-v${String(versionNumber).padStart(6, "0")}`;
}

/** Runs the tasks, at most `limit` at a time. */
async function runLimited(tasks: readonly (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    for (let task = tasks[next++]; task !== undefined; task = tasks[next++]) {
      await task();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, () => lane()));
}

export async function generateArchive(dir: string, models: number, versionsPerModel: number, dataBytes: number): Promise<GeneratedArchive> {
  const startedAt = Date.now();
  const modelIds = Array.from({ length: models }, (_, i) => modelIdOf(i));
  const samples = new Map<string, GeneratedVersion[]>();
  const tasks: (() => Promise<void>)[] = [];
  let bytes = 0;
  for (const [modelIndex, modelId] of modelIds.entries()) {
    const modelDir = join(dir, modelId);
    await mkdir(modelDir, { mode: 0o750 });
    tasks.push(() => writeFile(join(modelDir, `${modelId}.yaml`), `model_id: ${modelId}\nuser_data:\n  framework: torch\n  type: dqn\n`));
    for (let versionNumber = 1; versionNumber <= versionsPerModel; versionNumber++) {
      const data = randomBytes(dataBytes);
      const hash = createHash("sha256").update(data).digest("base64");
      const epochSeconds = BASE_EPOCH_SECONDS + modelIndex * versionsPerModel + versionNumber;
      const nanos = randomInt(0, 1_000_000_000);
      const step = String(versionNumber * 1000);
      const info =
        `model_id: ${modelId}\n` +
        `version_number: ${versionNumber}\n` +
        `creation_timestamp: ${rfc3339Nano(epochSeconds, nanos)}\n` +
        `data_hash: ${hash}\n` +
        `data_size: ${dataBytes}\n` +
        `user_data:\n  step: "${step}"\n`;
      const base = join(modelDir, versionFileBase(modelId, versionNumber));
      tasks.push(() => writeFile(`${base}.data`, data));
      tasks.push(() => writeFile(`${base}.yaml`, info));
      bytes += dataBytes;
      if (versionNumber === 1 || versionNumber === versionsPerModel) {
        const list = samples.get(modelId) ?? [];
        list.push({
          modelId,
          versionNumber,
          hash,
          size: dataBytes,
          creationTimestampNs: String(BigInt(epochSeconds) * 1_000_000_000n + BigInt(nanos)),
          step,
        });
        samples.set(modelId, list);
      }
    }
  }
  await runLimited(tasks, WRITE_CONCURRENCY);
  return { modelIds, versions: models * versionsPerModel, bytes, seconds: (Date.now() - startedAt) / 1000, samples };
}
