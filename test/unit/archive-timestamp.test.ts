import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { formatRfc3339Nano, parseRfc3339Nano } from "../../src/archive/timestamp.js";

describe("archive timestamps", () => {
  const roundTrips: [bigint, string][] = [
    [1633119005107454620n, "2021-10-01T20:10:05.10745462Z"],
    [1633119625907957639n, "2021-10-01T20:20:25.907957639Z"],
    [1633120000000000001n, "2021-10-01T20:26:40.000000001Z"],
    [1700000000123456789n, "2023-11-14T22:13:20.123456789Z"],
    [1633120000000000000n, "2021-10-01T20:26:40Z"],
    [1633119005100000000n, "2021-10-01T20:10:05.1Z"],
    [0n, "1970-01-01T00:00:00Z"],
    [-1n, "1969-12-31T23:59:59.999999999Z"],
    [-1_000_000_000n, "1969-12-31T23:59:59Z"],
    [-62135596800000000000n, "0001-01-01T00:00:00Z"],
    [1709164800000000000n, "2024-02-29T00:00:00Z"],
    [951782400000000000n, "2000-02-29T00:00:00Z"],
    [9223372036854775807n, "2262-04-11T23:47:16.854775807Z"],
    [-9223372036854775808n, "1677-09-21T00:12:43.145224192Z"],
  ];

  for (const [ns, text] of roundTrips) {
    test(`${ns} <-> ${text}`, () => {
      assert.equal(formatRfc3339Nano(ns), text);
      assert.equal(parseRfc3339Nano(text), ns);
    });
  }

  test("parses offsets, fraction lengths and the other forms Go's YAML decoder accepts", () => {
    const cases: [string, bigint][] = [
      ["2021-10-01T22:10:05.10745462+02:00", 1633119005107454620n],
      ["2021-10-01T14:40:05.10745462-05:30", 1633119005107454620n],
      ["2021-10-01T20:10:05.107454620+00:00", 1633119005107454620n],
      ["2021-10-01t20:10:05.10745462z", 1633119005107454620n],
      ["2021-10-01T20:10:05Z", 1633119005000000000n],
      ["2021-10-01T20:10:05.1Z", 1633119005100000000n],
      ["2021-10-01T20:10:05.12Z", 1633119005120000000n],
      ["2021-10-01T20:10:05.123456789Z", 1633119005123456789n],
      // Beyond nanoseconds the digits are truncated, as Go does.
      ["2021-10-01T20:10:05.1234567899Z", 1633119005123456789n],
      ["2021-10-1T20:10:5Z", 1633119005000000000n],
      ["2021-10-01 20:10:05.5", 1633119005500000000n],
      ["2021-10-01", 1633046400000000000n],
      ["2021-01-01T00:30:00+01:00", 1609457400000000000n],
    ];
    for (const [text, ns] of cases) {
      assert.equal(parseRfc3339Nano(text), ns, text);
    }
  });

  test("throws on malformed timestamps", () => {
    const malformed = [
      "",
      "garbage",
      "2021-10-01T20:10:05",
      "2021-10-01T20:10:05.Z",
      "2021-10-01T20:10:05+0200",
      "2021-10-01T20:10:05+02",
      "2021-10-01T20:10:05Z ",
      " 2021-10-01T20:10:05Z",
      "2021-10-01 20:10:05Z",
      "2021-13-01T00:00:00Z",
      "2021-00-01T00:00:00Z",
      "2021-02-29T00:00:00Z",
      "2021-04-31T00:00:00Z",
      "2021-10-00T00:00:00Z",
      "2021-10-01T24:00:00Z",
      "2021-10-01T20:60:00Z",
      "2021-10-01T20:10:60Z",
      "2021-10-01T20:10:05+24:00",
      "21-10-01T20:10:05Z",
      "2021-10-01T20:10:05.1e3Z",
    ];
    for (const text of malformed) {
      assert.throws(() => parseRfc3339Nano(text), /invalid timestamp/, JSON.stringify(text));
    }
  });

  test("format and parse are inverse over the int64 range", () => {
    let state = 0x2545f4914f6cdd1dn;
    for (let i = 0; i < 2000; i++) {
      // xorshift64: deterministic pseudo-random int64 values.
      state ^= (state << 13n) & 0xffffffffffffffffn;
      state ^= state >> 7n;
      state ^= (state << 17n) & 0xffffffffffffffffn;
      const ns = BigInt.asIntN(64, state);
      assert.equal(parseRfc3339Nano(formatRfc3339Nano(ns)), ns);
    }
  });
});
