import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { Code, type RegistryError } from "../../src/errors/index.js";
import { type UploadLimits, UploadWatchdog } from "../../src/rpc/upload-watchdog.js";
import { type SendLimits, SendWatchdog } from "../../src/rpc/send-watchdog.js";

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

/** A send watchdog on mocked timers and clock (Date.now, which the mock moves with the timers). */
function sendWatch(t: TestContext, limits: SendLimits): { dog: SendWatchdog; stalls: string[] } {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"] });
  const stalls: string[] = [];
  const dog = new SendWatchdog(limits, (why) => stalls.push(why), () => Date.now());
  t.after(() => dog.stop());
  return { dog, stalls };
}

test("send watchdog: fires only when writes are pending and none completes for the timeout", (t) => {
  const { dog, stalls } = sendWatch(t, { idleTimeoutMs: 1000, minRateBytesPerSecond: 0, minRatePeriodMs: 10_000 });
  let written = 0;
  const first = dog.track(() => written++, 10);
  const second = dog.track(() => written++, 10);
  t.mock.timers.tick(900);
  first(); // progress: the clock restarts
  t.mock.timers.tick(900);
  assert.deepEqual(stalls, []);
  second();
  t.mock.timers.tick(5000); // nothing pending: no stall
  assert.deepEqual(stalls, []);
  const third = dog.track(() => written++, 10);
  t.mock.timers.tick(1000);
  assert.deepEqual(stalls, ["idle"]);
  third();
  assert.equal(written, 3, "every write's own callback still runs");
});

test("send watchdog: a reader taking a chunk just before each idle timeout is reset once a period after the first is below the rate", (t) => {
  const { dog, stalls } = sendWatch(t, { idleTimeoutMs: 1000, minRateBytesPerSecond: 1000, minRatePeriodMs: 2000 });
  // One 1,000-byte write completes every 900 ms (never idle for 1 s): 1,111 bytes/s over the first
  // period (not checked), then the pace halves to 555 bytes/s.
  let pending = dog.track(() => {}, 1000);
  for (let i = 0; i < 3; i++) {
    t.mock.timers.tick(900);
    const done = pending;
    pending = dog.track(() => {}, 1000);
    done();
  }
  assert.deepEqual(stalls, []);
  for (let i = 0; i < 4 && stalls.length === 0; i++) {
    t.mock.timers.tick(900);
    const done = pending;
    pending = dog.track(() => {}, 500);
    done();
  }
  assert.deepEqual(stalls, ["the reader took 1000 bytes in 2000 ms of waiting (500 bytes/s), below 1000 bytes/s, after 5000 bytes"]);
});

test("send watchdog: only time with a write pending counts toward the rate's periods", (t) => {
  const { dog, stalls } = sendWatch(t, { idleTimeoutMs: 0, minRateBytesPerSecond: 1000, minRatePeriodMs: 1000 });
  // Slow in wall time (one 1,000-byte write per 10 s) but each taken at once: the server, not the
  // reader, is the slow one; nothing to reset.
  for (let i = 0; i < 5; i++) {
    const done = dog.track(() => {}, 1000);
    t.mock.timers.tick(100);
    done();
    t.mock.timers.tick(9900);
  }
  assert.deepEqual(stalls, []);
  // A write left unread: the first period passes unchecked, the second is below the rate.
  dog.track(() => {}, 1000);
  t.mock.timers.tick(1100);
  assert.deepEqual(stalls, []);
  t.mock.timers.tick(1000);
  assert.deepEqual(stalls, ["the reader took 0 bytes in 1000 ms of waiting (0 bytes/s), below 1000 bytes/s, after 5000 bytes"]);
});

test("bytes heard: a message still arriving keeps the client from idle; once they stop, idle expires naming the data of whole messages", (t) => {
  const { dog, errors, advance } = watch(t, { idleTimeoutMs: 1000, minRateBytesPerSecond: 0, minRatePeriodMs: 1000 });
  dog.hearsBytes();
  dog.waiting();
  dog.arrived(120);
  dog.received(100); // a whole message: 100 bytes of data
  dog.waiting();
  for (let i = 0; i < 10; i++) {
    advance(900); // one large message arriving for 9 s, never silent for 1 s
    dog.arrived(1000);
  }
  assert.equal(errors.length, 0);
  advance(999);
  assert.equal(errors.length, 0);
  advance(1);
  assert.equal(errors.length, 1);
  assert.equal(
    errors[0]?.message,
    "CreateVersion received nothing from the client for 1s (COGMENT_MODEL_REGISTRY_UPLOAD_IDLE_TIMEOUT = 1s) after 100 bytes of data; the upload was abandoned and its memory reservation released",
  );
});

test("bytes heard: the rate counts the bytes as they arrive, not the messages they make (counted once)", (t) => {
  const { dog, errors, advance } = watch(t, { idleTimeoutMs: 0, minRateBytesPerSecond: 1000, minRatePeriodMs: 1000 });
  dog.hearsBytes();
  dog.waiting();
  advance(1000); // first period: not checked
  for (let i = 0; i < 10; i++) {
    advance(99);
    dog.arrived(100); // 1000 bytes in the period: exactly the minimum, while no message is complete
  }
  advance(10); // the second period ends
  assert.equal(errors.length, 0);
  dog.received(5000); // a message completes: its data are not counted again
  dog.waiting();
  for (let i = 0; i < 10; i++) {
    advance(100);
    dog.arrived(90);
  }
  assert.equal(errors.length, 1);
  assert.equal(
    errors[0]?.message,
    "CreateVersion too slow: the client sent 810 bytes in 1s of waiting (810 bytes/s), below COGMENT_MODEL_REGISTRY_UPLOAD_MIN_RATE = 1000 bytes/s, after 5000 bytes of data; the upload was abandoned and its memory reservation released",
  );
});

test("bytes heard: nothing arrives before hearsBytes() counts, and arrivals while the server is busy do not end its pause", (t) => {
  const { dog, errors, advance } = watch(t, { idleTimeoutMs: 1000, minRateBytesPerSecond: 0, minRatePeriodMs: 1000 });
  dog.waiting();
  dog.arrived(10); // not heard: this watchdog judges whole messages
  advance(1000);
  assert.equal(errors.length, 1, "arrivals are ignored until hearsBytes()");
});

/** A send watchdog on mocked timers with a connection whose bytes written the test sets. */
function sendWatchWithConnection(t: TestContext, limits: SendLimits): { dog: SendWatchdog; stalls: string[]; socket: { written: number } } {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"] });
  const stalls: string[] = [];
  const socket = { written: 0 };
  const dog = new SendWatchdog(limits, (why) => stalls.push(why), () => Date.now(), () => socket.written);
  t.after(() => dog.stop());
  return { dog, stalls, socket };
}

test("send watchdog: the bytes of a message still being written count, for the rate and the idle clock", (t) => {
  const { dog, stalls, socket } = sendWatchWithConnection(t, { idleTimeoutMs: 4000, minRateBytesPerSecond: 1000, minRatePeriodMs: 2000 });
  // One 20,000-byte message taken at 1,500 bytes/s: 13 s to write, no write completes meanwhile.
  const done = dog.track(() => {}, 20_000);
  for (let i = 0; i < 13; i++) {
    t.mock.timers.tick(1000);
    socket.written += 1500;
  }
  assert.deepEqual(stalls, []);
  done();
  // Then a reader that stops after 700 bytes of the next: reset once a whole period passes without
  // a byte, the 700 bytes in its total.
  dog.track(() => {}, 20_000);
  socket.written += 700;
  t.mock.timers.tick(2000);
  assert.deepEqual(stalls, []);
  t.mock.timers.tick(2000);
  assert.deepEqual(stalls, ["the reader took 0 bytes in 2000 ms of waiting (0 bytes/s), below 1000 bytes/s, after 20700 bytes"]);
});

test("send watchdog: a stopped reader on a connection others keep busy is credited at most the message being written", (t) => {
  const { dog, stalls, socket } = sendWatchWithConnection(t, { idleTimeoutMs: 3000, minRateBytesPerSecond: 0, minRatePeriodMs: 1000 });
  dog.track(() => {}, 5000);
  for (let i = 0; i < 20 && stalls.length === 0; i++) {
    socket.written += 1000; // another stream's bytes: only the first 5,000 can be this message's
    t.mock.timers.tick(750);
  }
  assert.deepEqual(stalls, ["idle"]);
});
