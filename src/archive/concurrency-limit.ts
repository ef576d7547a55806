/**
 * Runs the tasks given to it at most `limit` at a time, in the order given; the rest wait their
 * turn. Each task's promise settles as the task's own.
 */
export interface ConcurrencyLimit {
  run<T>(task: () => Promise<T>): Promise<T>;
}

export function createConcurrencyLimit(limit: number): ConcurrencyLimit {
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new RangeError(`a concurrency limit is a whole number of at least 1, not ${limit}`);
  }
  let running = 0;
  const waiting: (() => void)[] = [];
  const release = (): void => {
    const next = waiting.shift();
    if (next === undefined) {
      running--;
    } else {
      next(); // the slot passes to the next task as it is
    }
  };
  return {
    async run(task) {
      if (running < limit) {
        running++;
      } else {
        await new Promise<void>((resolve) => waiting.push(resolve));
      }
      try {
        return await task();
      } finally {
        release();
      }
    },
  };
}
