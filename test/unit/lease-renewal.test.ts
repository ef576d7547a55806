import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { LEASE_RENEW_SHARE, renewLeaseWhileHeld } from "../../src/state/lease-renewal.js";

const MODULE = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), "../../src/state/lease-renewal.js")).href;

/** Waits until `predicate` holds (real timers: the renewals run on their own schedule). */
async function until(predicate: () => boolean, what: string): Promise<void> {
  for (const deadline = Date.now() + 10_000; !predicate(); await sleep(2)) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
  }
}

describe("renewLeaseWhileHeld", () => {
  test("renews a share of the lease apart, never at once, and never after stop", async () => {
    assert.equal(LEASE_RENEW_SHARE, 0.3);
    let renewals = 0;
    const renewal = renewLeaseWhileHeld(20, async () => {
      renewals++;
      return true;
    });
    assert.equal(renewals, 0, "the first renewal waits a share of the lease");
    await until(() => renewals >= 3, "three renewals");
    renewal.stop();
    renewal.stop(); // idempotent
    const atStop = renewals;
    await sleep(100); // over 15 renewal periods of 6 ms
    assert.equal(renewals, atStop);
  });

  test("a renewal that fails or finds the lease gone changes nothing: the next ones are sent, no rejection escapes", async () => {
    const outcomes: string[] = [];
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      const renewal = renewLeaseWhileHeld(20, async () => {
        const n = outcomes.length;
        outcomes.push(n === 0 ? "rejected" : n === 1 ? "gone" : "held");
        if (n === 0) {
          throw new Error("Redis is unreachable");
        }
        return n !== 1;
      });
      await until(() => outcomes.length >= 4, "four renewals");
      renewal.stop();
      await sleep(20); // a turn for a rejection to be reported
      assert.deepEqual(outcomes.slice(0, 4), ["rejected", "gone", "held", "held"]);
      assert.deepEqual(unhandled, []);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  test("a renewal left running does not keep the process alive", () => {
    const script = `import(${JSON.stringify(MODULE)}).then(({ renewLeaseWhileHeld }) => { renewLeaseWhileHeld(60000, async () => true); console.log("started"); });`;
    const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 60_000 });
    assert.equal(result.signal, null, "the process ended by itself (not killed by the timeout)");
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout.trim(), "started");
  });
});
