import type { EncodedVersionData } from "../data/index.js";
import type { Lease, Reservation } from "./version-cache.js";

/** What the load's owner does when it ends. */
export interface LoadEnd {
  /**
   * Every byte was read and matched its hash: resolves to a lease on the cache entry when the data
   * went into the cache (the insert consumed the reservation), undefined when they did not.
   */
  checked(): Promise<Lease<EncodedVersionData> | undefined>;
  /** The load failed (synchronous: the next reader must start a new load at once). */
  failed(): void;
}

/**
 * Reads a version into `data` (calling `chunkLoaded` once per reply chunk, in order, as soon as that
 * chunk's bytes are all in place) and checks it (its SHA-256); resolves once it is checked (before the
 * cache is filled), rejects when it is not what its info says (DATA_LOSS) or cannot be read.
 */
export type LoadBody = (chunkLoaded: () => void) => Promise<void>;

/**
 * One version being read into the cache while readers stream it: from the archive (issue #15) or, in
 * shared mode, a transient version read through from Redis (issue #17). Each reply chunk is sent as
 * soon as it is read, the SHA-256 is computed meanwhile, and the version enters the cache only once it
 * matches; on a mismatch every reader's stream ends with DATA_LOSS after the bytes (as a version
 * streamed from disk does) and nothing is cached; a read that fails half way (Redis unreachable) ends
 * every reader's stream with that error after the bytes read so far. Readers that arrive while it
 * loads follow the same load: the file (or Redis) is read once however many read it.
 *
 * Memory: the bytes stay counted in the cache's budget from the start (the reservation) to the end
 * of the last reader's stream: as an entry under a lease once cached, else as the reservation,
 * released when the last reader leaves. A reader that goes away changes nothing for the others, and
 * the load goes on without readers (the next one finds the version cached).
 */
export class CacheLoad {
  readonly #data: EncodedVersionData;
  #reservation: Reservation | undefined;
  #loadedChunks = 0;
  #progress = Promise.withResolvers<void>();
  /** Settles once every byte is read and checked. */
  readonly #checked: Promise<void>;
  /** Resolves once the load is over (the version cached, or not): the end of every reader's stream. */
  readonly #over = Promise.withResolvers<void>();
  #failed = false;
  #readers = 0;
  #finished = false;
  #mayStillBeRead = false;
  /** What keeps the bytes counted once the load is over and readers remain (a lease, or the reservation). */
  #hold: { release(mayStillBeRead: boolean): void } | undefined;

  constructor(data: EncodedVersionData, reservation: Reservation, body: LoadBody, end: LoadEnd) {
    this.#data = data;
    this.#reservation = reservation;
    this.#checked = body(() => {
      this.#loadedChunks += 1;
      this.#wake();
    });
    this.#checked.then(
      () => {
        void end.checked().then(
          (lease) => this.#finish(lease),
          () => this.#finish(undefined),
        );
      },
      // Readers see the failure through #checked; handled here, a load nobody follows leaves no unhandled rejection.
      () => {
        this.#failed = true;
        this.#wake();
        end.failed();
        this.#finish(undefined);
      },
    );
  }

  /**
   * A reader joins once the first chunk is read (a load that fails before, e.g. a file that cannot be
   * opened or has the wrong size, rejects here: nothing sent yet); its frames follow the load and end
   * with its outcome (DATA_LOSS thrown after the last frame when the hash does not match).
   */
  async follow(): Promise<{ frames: AsyncIterable<Buffer>; release(mayStillBeRead: boolean): void }> {
    this.#readers += 1;
    let released = false;
    const release = (mayStillBeRead: boolean): void => {
      if (!released) {
        released = true;
        this.#leave(mayStillBeRead);
      }
    };
    try {
      while (this.#loadedChunks === 0 && !this.#failed) {
        await this.#progress.promise;
      }
      if (this.#loadedChunks === 0) {
        await this.#checked; // throws its failure
      }
    } catch (error) {
      release(false);
      throw error;
    }
    return { frames: this.#frames(), release };
  }

  async *#frames(): AsyncGenerator<Buffer> {
    const frames = this.#data.frames();
    for (let index = 0; index < frames.length; index++) {
      while (this.#loadedChunks <= index && !this.#failed) {
        await this.#progress.promise;
      }
      if (this.#loadedChunks <= index) {
        break; // failed before this chunk was read: the error comes from #checked below
      }
      yield frames[index] as Buffer;
    }
    await this.#checked; // throws the failure (DATA_LOSS after the bytes)
    await this.#over.promise;
  }

  #wake(): void {
    const reached = this.#progress;
    this.#progress = Promise.withResolvers<void>();
    reached.resolve();
  }

  /** The load is over: what holds the bytes for the readers still streaming is released after the last one. */
  #finish(lease: Lease<EncodedVersionData> | undefined): void {
    const reservation = this.#reservation;
    this.#reservation = undefined;
    // After an insert the reservation is consumed: releasing it then does nothing.
    this.#hold = lease ?? (reservation === undefined ? undefined : { release: () => reservation.release() });
    this.#finished = true;
    this.#over.resolve();
    if (this.#readers === 0) {
      this.#releaseHold();
    }
  }

  #leave(mayStillBeRead: boolean): void {
    this.#readers -= 1;
    this.#mayStillBeRead ||= mayStillBeRead;
    if (this.#readers === 0 && this.#finished) {
      this.#releaseHold();
    }
  }

  #releaseHold(): void {
    const hold = this.#hold;
    this.#hold = undefined;
    hold?.release(this.#mayStillBeRead);
    this.#mayStillBeRead = false;
  }
}
