import type { ArchiveStore, StreamedVersionData } from "../archive/index.js";
import { checkComplete, checkHash, checkNotOverSize, creationTimestampOf } from "./upload-checks.js";
import type { VersionCommit } from "./version-commit.js";
import type { VersionRecord } from "../domain/index.js";
import type { Reservation } from "./version-cache.js";
import type { UploadHeader } from "./upload-header.js";
import type { PendingUpload } from "./version-upload.js";
import type { OffThreadHash } from "./streaming-hash.js";
import { notFound } from "../errors/index.js";

export interface StreamedUploadContext {
  readonly generation: number;
  /**
   * Whether the model was deleted since the upload began: no more batch is written then (the
   * commit would refuse the version), and no archive stream begun (a directory store would make the
   * deleted model's directory again).
   */
  modelDeleted(): boolean;
  readonly archive: ArchiveStore;
  readonly batchBytes: number;
  /** This upload's hash; given up on abort or failure. */
  readonly hash: OffThreadHash;
  commit(pending: VersionCommit): Promise<VersionRecord>;
  now(): bigint;
}

/**
 * An archived upload too large to hold in memory: received bytes gather in
 * one reserved batch buffer, and each full batch is written to a temporary
 * archive file and hashed (a hash thread's SHA-256 of the stream) in parallel,
 * before the batch is reused. The client's stream waits meanwhile (flow control).
 */
export class StreamedVersionUpload implements PendingUpload {
  private readonly batch: Buffer;
  private filled = 0;
  private received = 0;
  private stream: Promise<StreamedVersionData> | undefined = undefined;
  private settled = false;
  /** Set by abort(): no batch may be written after it, or a new temp file would outlive the upload. */
  private aborted = false;

  constructor(
    readonly header: UploadHeader,
    private readonly reservation: Reservation,
    private readonly context: StreamedUploadContext,
  ) {
    // Shared memory: the workers read the batch where it is.
    this.batch = Buffer.from(new SharedArrayBuffer(context.batchBytes));
  }

  async append(chunk: Uint8Array): Promise<void> {
    const total = this.received + chunk.byteLength;
    checkNotOverSize(this.header, total);
    this.received = total;
    let offset = 0;
    while (offset < chunk.byteLength) {
      const count = Math.min(this.batch.byteLength - this.filled, chunk.byteLength - offset);
      this.batch.set(chunk.subarray(offset, offset + count), this.filled);
      this.filled += count;
      offset += count;
      if (this.filled === this.batch.byteLength) {
        await this.flush();
        if (this.aborted) {
          return;
        }
      }
    }
  }

  async finish(): Promise<VersionRecord> {
    this.settled = true;
    try {
      checkComplete(this.header, this.received);
      await this.flush();
      const dataHash = await this.context.hash.digest();
      checkHash(this.header, dataHash);
      const stream = await this.openStream();
      return await this.context.commit({
        generation: this.context.generation,
        archived: true,
        creationTimestamp: creationTimestampOf(this.header, this.context.now),
        dataHash,
        userData: this.header.userData,
        payload: { kind: "stream", stream, dataSize: this.header.dataSize },
      });
    } catch (error) {
      await this.discard();
      throw error;
    } finally {
      this.reservation.release();
    }
  }

  abort(): void {
    if (!this.settled) {
      this.settled = true;
      this.aborted = true;
      this.reservation.release();
      void this.discard();
    }
  }

  private openStream(): Promise<StreamedVersionData> {
    if (this.stream === undefined && this.context.modelDeleted()) {
      return Promise.reject(this.deletedError());
    }
    this.stream ??= this.context.archive.beginVersionData(this.header.modelId);
    return this.stream;
  }

  /** The same refusal as the commit's (model-actor.ts). */
  private deletedError(): Error {
    return notFound(`model "${this.header.modelId}" not found (it was deleted while the version was uploading)`);
  }

  private async flush(): Promise<void> {
    if (this.filled === 0 || this.aborted) {
      return;
    }
    if (this.context.modelDeleted()) {
      throw this.deletedError(); // not a byte more written for a version the commit would refuse
    }
    const view = this.batch.subarray(0, this.filled);
    const stream = await this.openStream();
    await Promise.all([stream.append([view]), this.context.hash.update([view])]);
    this.filled = 0;
  }

  private async discard(): Promise<void> {
    this.context.hash.abandon(); // after digest(): nothing
    const stream = this.stream;
    this.stream = undefined;
    if (stream !== undefined) {
      await stream.then((s) => s.abort()).catch(() => {});
    }
  }
}
