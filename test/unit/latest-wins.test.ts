import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { LatestWins } from "../../src/latest-wins.js";

/** A consumer whose sends complete only when the test says so. */
function slowConsumer(): { sent: number[]; send: (value: number) => Promise<void>; complete: () => void } {
  const sent: number[] = [];
  const waiting: (() => void)[] = [];
  return {
    sent,
    send: (value) => {
      sent.push(value);
      return new Promise((resolve) => waiting.push(resolve));
    },
    complete: () => waiting.shift()?.(),
  };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("LatestWins", () => {
  test("a slow consumer gets the value in flight, then only the newest of those offered meanwhile", async () => {
    const consumer = slowConsumer();
    const sender = new LatestWins(consumer.send, (error) => assert.fail(String(error)));
    sender.offer(1);
    sender.offer(2);
    sender.offer(3);
    sender.offer(4);
    assert.deepEqual(consumer.sent, [1]);
    consumer.complete();
    await tick();
    assert.deepEqual(consumer.sent, [1, 4]);
    let idle = false;
    void sender.idle().then(() => (idle = true));
    await tick();
    assert.equal(idle, false, "a send is still in flight");
    consumer.complete();
    await tick();
    assert.equal(idle, true);
    assert.deepEqual(consumer.sent, [1, 4]);
  });

  test("close drops what is pending, sends nothing more and wakes idle waiters", async () => {
    const consumer = slowConsumer();
    const sender = new LatestWins(consumer.send, () => {});
    sender.offer(1);
    sender.offer(2);
    const idle = sender.idle();
    sender.close();
    await idle;
    consumer.complete();
    await tick();
    sender.offer(3);
    assert.deepEqual(consumer.sent, [1]);
    assert.equal(sender.isClosed, true);
  });

  test("a failing send closes the sender and reports the error once", async () => {
    const errors: unknown[] = [];
    const sender = new LatestWins<number>(() => Promise.reject(new Error("stream broke")), (error) => errors.push(error));
    sender.offer(1);
    await sender.idle();
    await tick();
    sender.offer(2);
    await tick();
    assert.equal(errors.length, 1);
    assert.equal((errors[0] as Error).message, "stream broke");
    assert.equal(sender.isClosed, true);
  });
});
