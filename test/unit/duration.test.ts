import { test, describe } from "node:test";
import { strict as assert } from "node:assert";

import { DurationError, parseGoDuration } from "../../src/duration.js";

const ACCEPTED = "(accepted: a Go duration such as 300ms, 1.5h or 2h45m; units ns, us, ms, s, m, h)";

function assertRejected(input: string, reason: string): void {
  assert.throws(
    () => parseGoDuration(input),
    (error: unknown) => {
      assert.ok(error instanceof DurationError);
      assert.equal(error.name, "DurationError");
      assert.equal(error.input, input);
      assert.equal(error.reason, reason);
      assert.equal(error.message, `invalid duration ${JSON.stringify(input)}: ${reason} ${ACCEPTED}`);
      return true;
    },
  );
}

describe("parseGoDuration accepts what Go accepts", () => {
  const cases: readonly (readonly [string, number])[] = [
    ["300ms", 300],
    ["1.5h", 5_400_000],
    ["2h45m", 9_900_000],
    ["10s", 10_000],
    ["1h2m3.5s", 3_723_500],
    ["-1.5h", -5_400_000],
    ["+10s", 10_000],
    ["0", 0],
    ["+0", 0],
    ["-0", 0],
    ["0s", 0],
    ["-0s", 0],
    ["1us", 0.001],
    ["1\u00b5s", 0.001],
    ["1\u03bcs", 0.001],
    ["100ns", 0.0001],
    ["1ns", 0.000001],
    [".5s", 500],
    ["1.s", 1000],
    ["1.5m", 90_000],
    ["1m30s", 90_000],
    ["30s1m", 90_000],
    ["1h1h", 7_200_000],
    ["0.000000001s", 0.000001],
    ["007s", 7000],
    ["1.0000000000000000000000001s", 1000],
    ["2562047h", 2562047 * 3_600_000],
    // The int64 range: the minimum is representable, the maximum is one nanosecond less in magnitude.
    ["9223372036854775807ns", Number(9223372036854775807n) / 1e6],
    ["-9223372036854775808ns", -Number(9223372036854775808n) / 1e6],
    ["2562047h47m16.854775807s", Number(9223372036854775807n) / 1e6],
  ];
  for (const [input, expected] of cases) {
    test(JSON.stringify(input), () => {
      assert.equal(parseGoDuration(input), expected);
    });
  }

  test("never returns negative zero", () => {
    assert.ok(Object.is(parseGoDuration("-0"), 0));
    assert.ok(Object.is(parseGoDuration("-0ms"), 0));
    assert.ok(Object.is(parseGoDuration("-0.0h"), 0));
  });
});

describe("parseGoDuration rejects what Go rejects", () => {
  test("empty string", () => assertRejected("", "empty string"));
  test("sign only", () => {
    assertRejected("-", "missing number after the sign");
    assertRejected("+", "missing number after the sign");
  });
  test("number without unit", () => {
    assertRejected("10", "missing unit");
    assertRejected("00", "missing unit");
    assertRejected("1.5", "missing unit");
    assertRejected("1h30", "missing unit");
  });
  test("several decimal points", () => assertRejected("1.5.5s", "missing unit"));
  test("unknown units", () => {
    assertRejected("1x", 'unknown unit "x"');
    assertRejected("1H", 'unknown unit "H"');
    assertRejected("1sec", 'unknown unit "sec"');
    assertRejected("1d", 'unknown unit "d"');
  });
  test("spaces", () => {
    assertRejected(" 1s", 'expected a number, found " "');
    assertRejected("1s ", 'unknown unit "s "');
    assertRejected("1 s", 'unknown unit " s"');
    assertRejected("1h 30m", 'unknown unit "h "');
  });
  test("unit without number", () => {
    assertRejected("h", 'expected a number, found "h"');
    assertRejected("\u00b5s", 'expected a number, found "\u00b5"');
    assertRejected("1h-1m", 'unknown unit "h-"');
    assertRejected("--1s", 'expected a number, found "-"');
  });
  test("number without digits", () => {
    assertRejected(".s", "a number needs at least one digit");
    assertRejected("-.s", "a number needs at least one digit");
    assertRejected(".", "a number needs at least one digit");
  });
  test("overflow of int64 nanoseconds", () => {
    const reason = "out of range (at most 2562047h47m16.854775807s, about 292 years)";
    assertRejected("9999999999h", reason);
    assertRejected("2562048h", reason);
    assertRejected("9223372036854775808ns", reason);
    assertRejected("-9223372036854775809ns", reason);
    assertRejected("99999999999999999999ns", reason);
    assertRejected("2562047h47m16.854775808s", reason);
    assertRejected("2562047h2562047h", reason);
  });
});
