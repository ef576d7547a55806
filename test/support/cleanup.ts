import type { TestContext } from "node:test";

/**
 * node:test runs a test's `after` hooks in the order they were registered, and stops at the first
 * that throws: a test that removed its archive directory in a hook registered before it started its
 * servers removed the directory under servers still running (ENOTEMPTY when one wrote meanwhile),
 * and that failure then skipped the hooks stopping the servers and redis-server, so the test file's
 * process never exited and the suite hung. Cleanups registered here run last in, first out (a
 * directory made before a server is removed after the server stopped), every one of them even when
 * one throws; the first error is thrown once all ran.
 */
const stacks = new WeakMap<TestContext, (() => unknown)[]>();

export function onCleanup(t: TestContext, cleanup: () => unknown): void {
  let stack = stacks.get(t);
  if (stack === undefined) {
    const created: (() => unknown)[] = [];
    stack = created;
    stacks.set(t, created);
    t.after(async () => {
      const errors: unknown[] = [];
      for (let next = created.pop(); next !== undefined; next = created.pop()) {
        try {
          await next();
        } catch (error) {
          errors.push(error);
        }
      }
      if (errors.length > 0) {
        throw errors[0];
      }
    });
  }
  stack.push(cleanup);
}
