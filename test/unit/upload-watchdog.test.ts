import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { Code, type RegistryError } from "../../src/errors/index.js";
import { type UploadLimits, UploadWatchdog } from "../../src/rpc/upload-watchdog.js";
import { SendWatchdog } from "../../src/rpc/send-watchdog.js";

/** A watchdog on mocked timers and a clock that moves with them. */
function watch(t: TestContext, limits: UploadLimits): { dog: UploadWatchdog; errors: RegistryError[]; advance(ms: number): void } {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  let now = 0;
  const errors: RegistryError[] = [];
  const dog = new UploadWatchdog(limits, (error) => errors.push(error), () => now);
  t.after(() => dog.stop());
  return {
    dog,
    errors,
    advance(ms) {
      now += ms;
      t.mock.timers.tick(ms);
    },
  };
}

test("idle: a wait longer than the idle timeout expires with DEADLINE_EXCEEDED; busy time does not count", (t) => {
  const { dog, errors, advance } = watch(t, { idleTimeoutMs: 1000, minRateBytesPerSecond: 0, minRatePeriodMs: 1000 });
  dog.waiting();
  advance(900);
  dog.received(10);
  advance(5000); // the server is busy with the message: not waiting for the client
  dog.waiting();
  advance(999);
  assert.equal(errors.length, 0);
  advance(1);
  assert.equal(errors.length, 1);
  assert.equal(errors[0]?.code, Code.DEADLINE_EXCEEDED);
  assert.equal(
    errors[0]?.message,
    "CreateVersion received nothing from the client for 1s (COGMENT_MODEL_REGISTRY_UPLOAD_IDLE_TIMEOUT = 1s) after 10 bytes of data; the upload was abandoned and its memory reservation released",
  );
  dog.received(5);
  advance(10_000);
  assert.equal(errors.length, 1, "expires once");
});

test("idle: a message that arrives keeps the earlier timer; when it fires early it re-arms for the time left of the new wait", (t) => {
  const { dog, errors, advance } = watch(t, { idleTimeoutMs: 1000, minRateBytesPerSecond: 0, minRatePeriodMs: 1000 });
  dog.waiting();
  advance(600);
  dog.received(1);
  dog.waiting(); // the new wait began at 600: it may last until 1600
  advance(400); // the first wait's timer fires at 1000
  assert.equal(errors.length, 0);
  advance(599);
  assert.equal(errors.length, 0);
  advance(1);
  assert.equal(errors.length, 1);
  assert.equal(
    errors[0]?.message,
    "CreateVersion received nothing from the client for 1s (COGMENT_MODEL_REGISTRY_UPLOAD_IDLE_TIMEOUT = 1s) after 1 bytes of data; the upload was abandoned and its memory reservation released",
  );
});

test("minimum rate: the first period is not checked, a later period below the rate expires", (t) => {
  const { dog, errors, advance } = watch(t, { idleTimeoutMs: 0, minRateBytesPerSecond: 1000, minRatePeriodMs: 1000 });
  dog.waiting();
  advance(1000); // first period: nothing sent, not checked
  assert.equal(errors.length, 0);
  for (let i = 0; i < 10; i++) {
    advance(99);
    dog.received(100);
    dog.waiting();
  }
  advance(10); // the second period ends: 1000 bytes in 1 s, exactly the minimum
  assert.equal(errors.length, 0);
  for (let i = 0; i < 10; i++) {
    advance(100); // the 10th ends the third period before its message arrives
    dog.received(99);
    dog.waiting();
  }
  assert.equal(errors.length, 1);
  assert.equal(
    errors[0]?.message,
    "CreateVersion too slow: the client sent 891 bytes in 1s of waiting (891 bytes/s), below COGMENT_MODEL_REGISTRY_UPLOAD_MIN_RATE = 1000 bytes/s, after 1891 bytes of data; the upload was abandoned and its memory reservation released",
  );
});

test("minimum rate: time the server spends on a message is not waiting time", (t) => {
  const { dog, errors, advance } = watch(t, { idleTimeoutMs: 0, minRateBytesPerSecond: 1000, minRatePeriodMs: 1000 });
  for (let i = 0; i < 40; i++) {
    dog.waiting();
    advance(50);
    dog.received(100); // 2000 bytes per second of waiting...
    advance(950); // ...but 100 bytes per wall-clock second: the server was busy
  }
  assert.deepEqual(errors, []);
});

test("no limits: never expires", (t) => {
  const { dog, errors, advance } = watch(t, { idleTimeoutMs: 0, minRateBytesPerSecond: 0, minRatePeriodMs: 1000 });
  dog.waiting();
  advance(3_600_000);
  assert.deepEqual(errors, []);
});

test("send watchdog: fires only when writes are pending and none completes for the timeout", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  let stalled = 0;
  const dog = new SendWatchdog(1000, () => stalled++);
  let written = 0;
  const first = dog.track(() => written++);
  const second = dog.track(() => written++);
  t.mock.timers.tick(900);
  first(); // progress: the clock restarts
  t.mock.timers.tick(900);
  assert.equal(stalled, 0);
  second();
  t.mock.timers.tick(5000); // nothing pending: no stall
  assert.equal(stalled, 0);
  const third = dog.track(() => written++);
  t.mock.timers.tick(1000);
  assert.equal(stalled, 1);
  third();
  assert.equal(written, 3, "every write's own callback still runs");
  dog.stop();
});
