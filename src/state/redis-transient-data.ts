import { type Hash, createHash } from "node:crypto";
import type { VersionRecord } from "../domain/index.js";
import { Code, RegistryError } from "../errors/index.js";
import type { Logger } from "../logger.js";
import type { ChunkChecksums, RedisRegistryStore, StoredVersion, VersionDataWriter } from "../redis/index.js";
import { ChunkChecksumCheck, checksumsFit } from "./chunk-checksum-check.js";
import { sameVersion } from "./lost-versions.js";
import type { TransientDataSink, TransientDataSource } from "./registry-state.js";

/**
 * Transient versions' data in Redis: the sinks an upload writes it through (each with its Redis
 * writer, which the commit finishes), and the sources a cache miss reads it from, checked against
 * the CRC-32 of each chunk (or data_hash).
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
   * A version's data in Redis, checked as it arrives: against the CRC-32 of each chunk its writer
   * stored (zlib, ~0.2 ms per MiB), so a chunk is handed on as verified only once all of it matched
   * and a corrupted or mixed-up chunk is never served; a version committed without them (by an
   * earlier build) against its SHA-256 (node:crypto on this thread, ~0.6 ms per MiB), which can only
   * tell at the end, after the bytes. Either way a mismatch ends the read with DATA_LOSS and an error
   * line names the version, as for a corrupted archive file.
   */
  private verifiedSource(stored: StoredVersion): TransientDataSource {
    const { checksums, chunkCount, record } = stored;
    return checksums !== undefined && checksumsFit(checksums, record.dataSize, chunkCount)
      ? this.checksummedSource(stored, checksums)
      : this.hashedSource(stored);
  }

  private checksummedSource(stored: StoredVersion, checksums: ChunkChecksums): TransientDataSource {
    const { store } = this;
    const corrupted = (detail: string): RegistryError => this.corrupted(stored.record, detail);
    return {
      async copyTo(write, verified) {
        const check = new ChunkChecksumCheck(checksums, stored.record.dataSize);
        await store.copyVersionData(stored, (piece) => {
          // Called from the chunk channel's parser: nothing may throw here; the end of the copy reports it.
          if (check.mismatch === undefined) {
            write(piece);
            verified(check.add(piece));
          }
        });
        if (check.mismatch !== undefined) {
          throw corrupted(check.mismatch);
        }
      },
      async *stream() {
        const { dataSize } = stored.record;
        const check = new ChunkChecksumCheck(checksums, dataSize);
        let received = 0;
        for await (const chunk of store.readVersionData(stored)) {
          received += chunk.byteLength;
          check.add(chunk);
          if (check.mismatch !== undefined) {
            throw corrupted(check.mismatch);
          }
          yield chunk;
        }
        if (received !== dataSize) {
          throw corrupted(`its chunks hold ${received} bytes, its info says ${dataSize}`);
        }
      },
    };
  }

  private hashedSource(stored: StoredVersion): TransientDataSource {
    const { store } = this;
    const version = stored.record;
    const check = (hash: Hash): void => {
      const digest = hash.digest("base64");
      if (digest !== version.dataHash) {
        throw this.corrupted(version, `its data's SHA-256 is "${digest}", its info says "${version.dataHash}"`);
      }
    };
    return {
      async copyTo(write, verified) {
        const hash = createHash("sha256");
        let position = 0;
        await store.copyVersionData(stored, (piece) => {
          hash.update(piece);
          write(piece);
          position += piece.byteLength;
          verified(position); // unverified until the end: the SHA-256 can only tell after the bytes
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

  /** Logs the corruption and returns the DATA_LOSS error that ends the read. */
  private corrupted(version: VersionRecord, detail: string): RegistryError {
    const { modelId, versionNumber } = version;
    this.log.error({ modelId, versionNumber, redis: this.store.connection.address, detail }, "transient version data in Redis is corrupted");
    return new RegistryError(Code.DATA_LOSS, `version ${versionNumber} of model "${modelId}" is corrupted in Redis: ${detail}`);
  }
}
