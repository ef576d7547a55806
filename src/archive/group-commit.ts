/**
 * Group commit of small atomic file writes (a model's info, metadata). Each write costs two fsyncs
 * (the file, then its directory) whose latency, not CPU, bounds how many calls a second are
 * answered; fsyncs in flight together cost about what one does (the file system commits its
 * journal once for all of them). So while one batch is being written, the calls that come queue,
 * and the next batch takes them all at once.
 *
 * Ordering: one batch at a time, so a write is never overtaken by an earlier one. Writes of the same
 * file queued together are coalesced: the batch writes the latest content, and every caller that
 * asked for an earlier one is answered after it (their change is on disk, replaced by a later one
 * as it would have been anyway). Each caller gets the outcome of the write that carried its
 * change: a failure of one file reaches only the callers of that file.
 */

/** One file of a batch. */
export interface GroupedFile {
  readonly path: string;
  readonly content: string | readonly Uint8Array[];
}

/** Writes a batch of distinct files atomically and durably; resolves, in order, to each file's error or undefined. */
export type BatchWriter = (files: readonly GroupedFile[]) => Promise<readonly (Error | undefined)[]>;

export interface GroupCommitStats {
  readonly batches: number;
  readonly files: number;
  readonly calls: number;
}

export interface GroupCommit {
  /** Resolves once `content` (or a later content of the same path) is durably in place at `path`. */
  write(path: string, content: string | readonly Uint8Array[]): Promise<void>;
  stats(): GroupCommitStats;
}

interface Waiter {
  resolve(): void;
  reject(error: unknown): void;
}

interface QueuedFile {
  content: string | readonly Uint8Array[];
  readonly waiters: Waiter[];
}

export function createGroupCommit(writeBatch: BatchWriter): GroupCommit {
  /** Insertion-ordered: a batch writes files in the order their first caller came. */
  let queued = new Map<string, QueuedFile>();
  let writing = false;
  let batches = 0;
  let files = 0;
  let calls = 0;

  const settle = (entries: readonly [string, QueuedFile][], outcomes: readonly (Error | undefined)[] | undefined, failure: unknown): void => {
    entries.forEach(([, file], index) => {
      const error = outcomes === undefined ? failure : outcomes[index];
      for (const waiter of file.waiters) {
        if (error === undefined) {
          waiter.resolve();
        } else {
          waiter.reject(error);
        }
      }
    });
  };

  /** A batch is begun on the next turn of the event loop, so that the calls ready in this one join it. */
  let scheduled = false;
  const schedule = (): void => {
    if (!writing && !scheduled && queued.size > 0) {
      scheduled = true;
      setImmediate(drain);
    }
  };
  const drain = (): void => {
    scheduled = false;
    if (writing || queued.size === 0) {
      return;
    }
    writing = true;
    const entries = [...queued];
    queued = new Map();
    batches++;
    files += entries.length;
    const batch = entries.map(([path, file]) => ({ path, content: file.content }));
    let written: Promise<readonly (Error | undefined)[]>;
    try {
      written = writeBatch(batch);
    } catch (error) {
      written = Promise.reject(error);
    }
    written
      .then(
        (outcomes) => {
          if (outcomes.length !== entries.length) {
            throw new Error(`a batch of ${entries.length} files reported ${outcomes.length} outcomes`);
          }
          settle(entries, outcomes, undefined);
        },
        (error: unknown) => settle(entries, undefined, error),
      )
      .catch((error: unknown) => settle(entries, undefined, error))
      .finally(() => {
        writing = false;
        schedule();
      });
  };

  return {
    write(path, content) {
      calls++;
      return new Promise<void>((resolve, reject) => {
        const file = queued.get(path);
        if (file === undefined) {
          queued.set(path, { content, waiters: [{ resolve, reject }] });
        } else {
          file.content = content;
          file.waiters.push({ resolve, reject });
        }
        schedule();
      });
    },
    stats: () => ({ batches, files, calls }),
  };
}
