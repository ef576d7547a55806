import assert from "node:assert/strict";
import type { IncomingHttpHeaders } from "node:http2";
import { describe, test } from "node:test";
import { LONGEST_GRPC_TIMEOUT, clampGrpcTimeout } from "../../src/rpc/grpc-timeout.js";

function clamped(timeout: string | undefined): string | undefined {
  const headers: IncomingHttpHeaders = timeout === undefined ? {} : { "grpc-timeout": timeout };
  clampGrpcTimeout(headers);
  return headers["grpc-timeout"] as string | undefined;
}

describe("clampGrpcTimeout", () => {
  test("a timeout a timer can wait for is left as it is", () => {
    assert.equal(clamped("2147483S"), "2147483S");
    assert.equal(clamped("2147483647m"), "2147483647m"); // grpc-js reads its last 8 digits and unit: 47483647 ms
    assert.equal(clamped("99999999u"), "99999999u");
    assert.equal(clamped("99999999n"), "99999999n");
    assert.equal(clamped("596H"), "596H");
    assert.equal(clamped(undefined), undefined);
  });

  test("a longer one becomes the longest a timer can wait for, whatever its unit", () => {
    assert.equal(LONGEST_GRPC_TIMEOUT, "2147483S");
    assert.equal(clamped("2147484S"), "2147483S");
    assert.equal(clamped("2592000S"), "2147483S");
    assert.equal(clamped("597H"), "2147483S");
    assert.equal(clamped("99999999H"), "2147483S");
    assert.equal(clamped("35792M"), "2147483S");
    assert.equal(clamped("2592000 S"), "2147483S");
  });

  test("read as grpc-js reads it; a value it cannot read is left for it to refuse", () => {
    assert.equal(clamped("123456789S"), "2147483S"); // grpc-js: 23456789 s
    assert.equal(clamped("forever"), "forever");
    assert.equal(clamped("5X"), "5X");
  });
});
