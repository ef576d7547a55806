/**
 * A port of Go's `time.ParseDuration`, so that duration settings accept exactly what the upstream
 * (Go) Cogment Model Registry accepts.
 */

const ACCEPTED = "a Go duration such as 300ms, 1.5h or 2h45m; units ns, us, ms, s, m, h";

const NANOSECONDS_PER_UNIT: ReadonlyMap<string, bigint> = new Map([
  ["ns", 1n],
  ["us", 1_000n],
  ["\u00b5s", 1_000n], // micro sign
  ["\u03bcs", 1_000n], // Greek small letter mu
  ["ms", 1_000_000n],
  ["s", 1_000_000_000n],
  ["m", 60_000_000_000n],
  ["h", 3_600_000_000_000n],
]);

/** |int64 min|: Go accepts this magnitude for negative durations only. */
const LIMIT = 1n << 63n;
const NANOSECONDS_PER_MILLISECOND = 1e6;

export class DurationError extends Error {
  override readonly name = "DurationError";

  constructor(
    /** The text that failed to parse. */
    readonly input: string,
    /** What is wrong with it, without the input or the accepted form, e.g. "missing unit". */
    readonly reason: string,
  ) {
    super(`invalid duration ${JSON.stringify(input)}: ${reason} (accepted: ${ACCEPTED})`);
  }
}

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= "0" && c <= "9";

/**
 * Parses a Go duration string (e.g. "300ms", "1.5h", "2h45m", "-1m30s") and returns milliseconds,
 * possibly fractional ("1us" is 0.001). Throws DurationError for anything Go would reject, including
 * values outside Go's int64 nanosecond range (about ±292 years).
 */
export function parseGoDuration(text: string): number {
  const fail = (reason: string): never => {
    throw new DurationError(text, reason);
  };
  const outOfRange = (): never => fail("out of range (at most 2562047h47m16.854775807s, about 292 years)");

  let i = 0;
  let negative = false;
  if (text[0] === "-" || text[0] === "+") {
    negative = text[0] === "-";
    i = 1;
  }
  const body = text.slice(i);
  if (body === "0") {
    return 0;
  }
  if (text === "") {
    fail("empty string");
  }
  if (body === "") {
    fail("missing number after the sign");
  }

  let total = 0n;
  while (i < text.length) {
    const c = text[i];
    if (c !== "." && !isDigit(c)) {
      fail(`expected a number, found ${JSON.stringify(String.fromCodePoint(text.codePointAt(i) ?? 0))}`);
    }

    const intStart = i;
    while (isDigit(text[i])) {
      i++;
    }
    const hasInt = i > intStart;
    const whole = hasInt ? BigInt(text.slice(intStart, i)) : 0n;
    if (whole > LIMIT) {
      outOfRange();
    }

    // Like Go, keep at most the fraction digits that fit in a uint64 and ignore the rest.
    let fraction = 0n;
    let scale = 1;
    let hasFraction = false;
    if (text[i] === ".") {
      i++;
      let saturated = false;
      while (isDigit(text[i])) {
        hasFraction = true;
        if (!saturated) {
          const next = fraction * 10n + BigInt(text.charCodeAt(i) - 48);
          if (fraction > (LIMIT - 1n) / 10n || next > LIMIT) {
            saturated = true;
          } else {
            fraction = next;
            scale *= 10;
          }
        }
        i++;
      }
    }
    if (!hasInt && !hasFraction) {
      fail("a number needs at least one digit");
    }

    // Like Go, the unit is everything up to the next digit or ".", so "1s " has the unit "s ".
    const unitStart = i;
    while (i < text.length && text[i] !== "." && !isDigit(text[i])) {
      i++;
    }
    if (i === unitStart) {
      fail("missing unit");
    }
    const unitText = text.slice(unitStart, i);
    const unit = NANOSECONDS_PER_UNIT.get(unitText) ?? fail(`unknown unit ${JSON.stringify(unitText)}`);

    if (whole > LIMIT / unit) {
      outOfRange();
    }
    let value = whole * unit;
    if (fraction > 0n) {
      // Go computes the fractional part in float64 and truncates; do the same for identical results.
      value += BigInt(Math.trunc(Number(fraction) * (Number(unit) / scale)));
      if (value > LIMIT) {
        outOfRange();
      }
    }
    total += value;
    if (total > LIMIT) {
      outOfRange();
    }
  }

  if (!negative && total > LIMIT - 1n) {
    outOfRange();
  }
  if (total === 0n) {
    return 0; // never -0
  }
  const milliseconds = Number(total) / NANOSECONDS_PER_MILLISECOND;
  return negative ? -milliseconds : milliseconds;
}
