import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

import { SpareValues } from "../../src/registry/spare-values.js";

/** Spares on a fake clock; the expiry timer (real, maxAgeMs period) is cleared by clear() in t.after. */
function pool(maxAgeMs = 1000): { spares: SpareValues<string>; clock: { t: number } } {
  const clock = { t: 0 };
  return { spares: new SpareValues<string>({ maxAgeMs, now: () => clock.t }), clock };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!condition()) {
    if (Date.now() > deadline) {
      assert.fail(`timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe("SpareValues", () => {
  test("reuse by exact size only, the most recently added first, each value once", (t) => {
    const { spares } = pool();
    t.after(() => spares.clear());
    spares.add(100, "a");
    spares.add(200, "b");
    spares.add(100, "c");
    assert.equal(spares.bytes, 400);
    assert.equal(spares.count, 3);

    assert.equal(spares.take(150), undefined, "no spare of another size");
    assert.equal(spares.take(101), undefined);
    assert.equal(spares.reuses, 0);
    assert.equal(spares.take(100), "c");
    assert.equal(spares.take(100), "a");
    assert.equal(spares.take(100), undefined, "each spare is handed out once");
    assert.equal(spares.bytes, 200);
    assert.equal(spares.count, 1);
    assert.equal(spares.reuses, 2);
    assert.equal(spares.take(200), "b");
    assert.equal(spares.bytes, 0);
    assert.equal(spares.reuses, 3);
  });

  test("dropOldest forgets the oldest first and returns its bytes; 0 when empty", (t) => {
    const { spares } = pool();
    t.after(() => spares.clear());
    spares.add(10, "old");
    spares.add(20, "new");
    assert.equal(spares.dropOldest(), 10);
    assert.equal(spares.take(10), undefined);
    assert.equal(spares.dropOldest(), 20);
    assert.equal(spares.dropOldest(), 0);
    assert.equal(spares.bytes, 0);
    assert.equal(spares.reuses, 0, "dropping is not reusing");
  });

  test("dropExpired forgets spares older than maxAgeMs (strictly), keeps the younger ones", (t) => {
    const { spares, clock } = pool(1000);
    t.after(() => spares.clear());
    spares.add(10, "at0");
    clock.t = 500;
    spares.add(20, "at500");
    clock.t = 1000;
    spares.dropExpired();
    assert.equal(spares.count, 2, "exactly maxAgeMs old is kept");
    clock.t = 1001;
    spares.dropExpired();
    assert.equal(spares.count, 1);
    assert.equal(spares.bytes, 20);
    assert.equal(spares.take(20), "at500");
  });

  test("the expiry timer forgets old spares by itself, then stops", async (t) => {
    const { spares, clock } = pool(20);
    t.after(() => spares.clear());
    spares.add(10, "a");
    spares.add(30, "b");
    clock.t = 21; // both older than maxAgeMs on the fake clock: the next tick drops them
    await until(() => spares.count === 0, "the expiry timer");
    assert.equal(spares.bytes, 0);

    // Stopped with nothing left, it starts again with the next spare.
    clock.t = 100;
    spares.add(5, "c");
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(spares.count, 1, "a young spare survives the timer's ticks");
    clock.t = 121;
    await until(() => spares.count === 0, "the restarted expiry timer");
  });

  test("clear forgets every spare and returns their bytes; it is idempotent and the pool stays usable", (t) => {
    const { spares } = pool();
    t.after(() => spares.clear());
    spares.add(10, "a");
    spares.add(20, "b");
    assert.equal(spares.clear(), 30);
    assert.equal(spares.count, 0);
    assert.equal(spares.bytes, 0);
    assert.equal(spares.take(10), undefined);
    assert.equal(spares.clear(), 0);
    spares.add(7, "c");
    assert.equal(spares.take(7), "c");
  });

  test("the expiry timer is unref'd and clear stops it: a process with spares exits", async () => {
    const moduleUrl = new URL("../../src/registry/spare-values.js", import.meta.url).href;
    const script =
      `import { SpareValues } from ${JSON.stringify(moduleUrl)};\n` +
      `const kept = new SpareValues({ maxAgeMs: 60000, now: () => performance.now() });\n` +
      `kept.add(1, "v");\n` +
      `const cleared = new SpareValues({ maxAgeMs: 60000, now: () => performance.now() });\n` +
      `cleared.add(1, "v");\n` +
      `console.log(cleared.clear(), kept.count);\n`;
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        ["--input-type=module", "-e", script],
        { timeout: 10_000, cwd: fileURLToPath(new URL(".", import.meta.url)) },
        (error, out) => (error === null ? resolve(out) : reject(error)),
      );
    });
    assert.equal(stdout, "1 1\n");
  });
});
