import type { EncodedVersionData } from "../data/index.js";
import { checkComplete, checkHash, checkNotOverSize, creationTimestampOf } from "./upload-checks.js";
import type { VersionCommit } from "./version-commit.js";
import type { VersionRecord } from "../domain/index.js";
import type { UploadHeader } from "./upload-header.js";
import type { TransientDataSink } from "../state/index.js";
import type { Reservation } from "./version-cache.js";

export interface UploadContext {
  readonly generation: number;
  /** A shared registry state's sink for a transient upload's bytes (see RegistryState.beginTransientData). */
  readonly shared?: TransientDataSink | undefined;
  hash(segments: readonly Uint8Array[]): Promise<string>;
  commit(pending: VersionCommit): Promise<VersionRecord>;
  now(): bigint;
}

/** One CreateVersion in flight, whichever way its bytes are kept. */
export interface PendingUpload {
  readonly header: UploadHeader;
  /**
   * Takes the next body chunk; when it returns a promise, wait for it before the next chunk or
   * finish(). When it returns undefined, or once the promise settled (resolved or rejected), the
   * chunk's bytes were copied (or will never be) and nothing keeps the chunk: the caller may free
   * its memory.
   */
  append(chunk: Uint8Array): void | Promise<void>;
  /** Checks size and hash, then commits: resolves to the stored version. */
  finish(): Promise<VersionRecord>;
  /** Frees what an upload that failed or was cancelled holds. Idempotent. */
  abort(): void;
}

/**
 * An upload kept in memory: its bytes are reserved in the cache account at
 * the header and copied once, straight into their final encoded place.
 */
export class VersionUpload implements PendingUpload {
  private received = 0;
  private settled = false;

  constructor(
    readonly header: UploadHeader,
    private readonly data: EncodedVersionData,
    private readonly reservation: Reservation,
    private readonly context: UploadContext,
  ) {}

  get receivedBytes(): number {
    return this.received;
  }

  append(chunk: Uint8Array): void | Promise<void> {
    const total = this.received + chunk.byteLength;
    checkNotOverSize(this.header, total);
    this.data.write(this.received, chunk);
    this.received = total;
    return this.context.shared?.append(chunk);
  }

  async finish(): Promise<VersionRecord> {
    this.settled = true;
    try {
      checkComplete(this.header, this.received);
      const dataHash = await this.context.hash(this.data.dataSegments());
      checkHash(this.header, dataHash);
      return await this.context.commit({
        generation: this.context.generation,
        archived: this.header.archived,
        creationTimestamp: creationTimestampOf(this.header, this.context.now),
        dataHash,
        userData: this.header.userData,
        payload: { kind: "memory", data: this.data, reservation: this.reservation, shared: this.context.shared },
      });
    } catch (error) {
      this.reservation.release();
      this.context.shared?.abort();
      throw error;
    }
  }

  /** Frees the reservation of an upload that failed or was cancelled. Idempotent. */
  abort(): void {
    if (!this.settled) {
      this.settled = true;
      this.reservation.release();
      this.context.shared?.abort();
    }
  }
}
