/** A one-slot wake-up: `wait()` resolves at the next `wake()`, at a deadline, or when aborted (never later). */
export class WakeSignal {
  private waiter: (() => void) | undefined = undefined;
  private woken = false;

  wake(): void {
    this.woken = true;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  wait(until: number, signal: AbortSignal, now: () => number): Promise<void> {
    if (this.woken || signal.aborted) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        this.waiter = undefined;
        this.woken = false;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, until - now()));
      signal.addEventListener("abort", done, { once: true });
      this.waiter = done;
    });
  }
}
