import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, test } from "node:test";
import { WriteConfirmations } from "../../src/rpc/write-confirmations.js";

describe("WriteConfirmations", () => {
  test("all confirmed once every tracked write's callback came, each counted once", async () => {
    const writes = new WriteConfirmations();
    assert.equal(writes.allConfirmed, true);
    const first = writes.track();
    const second = writes.track();
    assert.equal(writes.allConfirmed, false);
    first();
    first();
    assert.equal(writes.allConfirmed, false, "a callback called twice counts once");
    const call = new EventEmitter();
    const settled = writes.settled(call);
    second();
    await settled;
    assert.equal(writes.allConfirmed, true);
    assert.equal(call.listenerCount("cancelled") + call.listenerCount("close") + call.listenerCount("error"), 0);
  });

  for (const event of ["cancelled", "close", "error"] as const) {
    test(`settled ends when the call emits '${event}', with writes still unconfirmed`, async () => {
      const writes = new WriteConfirmations();
      writes.track();
      const call = new EventEmitter();
      call.on("error", () => {});
      const settled = writes.settled(call);
      call.emit(event);
      await settled;
      assert.equal(writes.allConfirmed, false);
    });
  }

  test("settled has no timeout: unconfirmed writes still hold memory, so it waits for them or the call", async () => {
    const writes = new WriteConfirmations();
    const confirm = writes.track();
    const call = new EventEmitter();
    let ended = false;
    const settled = writes.settled(call).then(() => {
      ended = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(ended, false);
    confirm();
    await settled;
    assert.equal(ended, true);
  });
});
