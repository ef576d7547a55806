import { type Hash, createHash } from "node:crypto";
import type { VersionRecord } from "../domain/index.js";
import { Code, RegistryError } from "../errors/index.js";
import type { Logger } from "../logger.js";
import type { RedisRegistryStore, StoredVersion, VersionDataWriter } from "../redis/index.js";
import { sameVersion } from "./lost-versions.js";
import type { TransientDataSink, TransientDataSource } from "./registry-state.js";

/**
 * Transient versions' data in Redis: the sinks an upload writes it through (each with its Redis
 * writer, which the commit finishes), and the sources a cache miss reads it from, checked against
 * data_hash.
 */
export class RedisTransientData {
  /** The Redis writer behind each sink handed out by begin(). */
  private readonly writers = new WeakMap<TransientDataSink, VersionDataWriter>();

  constructor(
    private readonly store: RedisRegistryStore,
    private readonly log: Logger,
  ) {}

  /** See RegistryState.beginTransientData. */
  begin(modelId: string, dataSize: number): TransientDataSink {
    const writer = this.store.beginVersionData(modelId, dataSize);
    let aborted = false;
    const sink: TransientDataSink = {
      append: (data) => writer.append(data),
      abort: () => {
        if (!aborted) {
          aborted = true;
          writer.abort().catch(() => undefined);
        }
      },
    };
    this.writers.set(sink, writer);
    return sink;
  }

  /** The Redis writer behind a sink of begin(); undefined for a sink of another state. */
  writerOf(sink: TransientDataSink): VersionDataWriter | undefined {
    return this.writers.get(sink);
  }

  /** See RegistryState.openTransientData. */
  async open(version: VersionRecord): Promise<TransientDataSource | undefined> {
    const stored = await this.store.getVersion(version.modelId, version.versionNumber);
    // The same bytes or none: a number (and a creation_timestamp, which a client may give again) is
    // no identity, since a model deleted and created again numbers from 1 again.
    if (stored === undefined || stored.record.archived || !sameVersion(stored.record, version)) {
      return undefined;
    }
    return this.verifiedSource(stored);
  }

  /**
   * A version's data in Redis, hashed as it arrives (node:crypto on this thread: ~9 ms of CPU per
   * 16 MiB with the CPU's SHA instructions, where the worker pool's hash-wasm costs several times
   * that): when the SHA-256 differs from the version's data_hash, the read ends with DATA_LOSS instead
   * of completing, and an error line names the version, as for a corrupted archive file.
   */
  private verifiedSource(stored: StoredVersion): TransientDataSource {
    const { store, log } = this;
    const version = stored.record;
    const check = (hash: Hash): void => {
      const digest = hash.digest("base64");
      if (digest !== version.dataHash) {
        const { modelId, versionNumber } = version;
        const detail = `its data's SHA-256 is "${digest}", its info says "${version.dataHash}"`;
        log.error({ modelId, versionNumber, redis: store.connection.address, detail }, "transient version data in Redis is corrupted");
        throw new RegistryError(Code.DATA_LOSS, `version ${versionNumber} of model "${modelId}" is corrupted in Redis: ${detail}`);
      }
    };
    return {
      async copyTo(write) {
        const hash = createHash("sha256");
        await store.copyVersionData(stored, (piece) => {
          hash.update(piece);
          write(piece);
        });
        check(hash);
      },
      async *stream() {
        const hash = createHash("sha256");
        for await (const chunk of store.readVersionData(stored)) {
          hash.update(chunk);
          yield chunk;
        }
        check(hash);
      },
    };
  }
}
