import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { EMPTY_USER_DATA } from "../../src/registry/index.js";
import { validateUserData } from "../../src/rpc/validate.js";

describe("validateUserData", () => {
  test("an empty user_data is the one shared, frozen EMPTY_USER_DATA", () => {
    assert.equal(validateUserData("user_data", {}), EMPTY_USER_DATA);
    assert.equal(validateUserData("user_data", {}), validateUserData("other", {}));
    assert.ok(Object.isFrozen(EMPTY_USER_DATA));
    assert.throws(() => {
      (EMPTY_USER_DATA as Record<string, string>).key = "value";
    }, TypeError);
    assert.deepEqual(Object.keys(EMPTY_USER_DATA), []);
  });

  test("a non-empty user_data is copied into a new plain record", () => {
    const received = { a: "1", b: "2" };
    const copied = validateUserData("user_data", received);
    assert.notEqual(copied, received);
    assert.deepEqual(copied, { a: "1", b: "2" });
    assert.equal(Object.getPrototypeOf(copied), Object.prototype);
    assert.ok(!Object.isFrozen(copied));
  });
});
