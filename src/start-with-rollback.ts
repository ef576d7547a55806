import type { Logger } from "./logger.js";

/**
 * Runs a start that registers each resource it acquires on `stack` (defer/use, once, as it is
 * acquired) and moves the stack into what it returns. If the start fails, what it had registered is
 * released in reverse order and the start's own error is thrown: an error while releasing is logged,
 * never thrown over it (`await using` would hide it in a SuppressedError).
 */
export async function startWithRollback<T>(log: Logger, start: (stack: AsyncDisposableStack) => Promise<T>): Promise<T> {
  const stack = new AsyncDisposableStack();
  try {
    return await start(stack);
  } catch (error) {
    try {
      await stack.disposeAsync();
    } catch (releaseError) {
      log.error({ err: releaseError }, "cannot release what the failed start had acquired");
    }
    throw error;
  }
}
