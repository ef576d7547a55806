/**
 * Runs tasks one after another. A failed task does not poison the queue.
 * `onIdle` fires when the last queued task settles, so owners can drop idle queues.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private pendingCount = 0;

  constructor(private readonly onIdle: () => void = () => {}) {}

  get pending(): number {
    return this.pendingCount;
  }

  run<T>(task: () => Promise<T>): Promise<T> {
    this.pendingCount++;
    const result = this.tail.then(task, task);
    this.tail = result.then(this.settle, this.settle);
    return result;
  }

  /** One function for every task (a queue runs one per commit). */
  private readonly settle = (): void => {
    this.pendingCount--;
    if (this.pendingCount === 0) {
      this.onIdle();
    }
  };
}
