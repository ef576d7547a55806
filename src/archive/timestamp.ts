/*
 * Timestamps as the original Go server stores them: Go's `time.Time` YAML form, i.e.
 * `t.Format(time.RFC3339Nano)` (UTC, "Z", fraction with trailing zeros trimmed).
 * Conversion is done on integers only so that nanoseconds survive exactly.
 */

const NS_PER_SECOND = 1_000_000_000n;
const SECONDS_PER_DAY = 86_400n;
const NS_PER_DAY = NS_PER_SECOND * SECONDS_PER_DAY;

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian calendar).
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

function civilFromDays(days: number): { year: number; month: number; day: number } {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const dayOfEra = z - era * 146_097;
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365,
  );
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const mp = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return { year: yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day };
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) {
    const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
    return leap ? 29 : 28;
  }
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

const pad = (value: number, width: number): string => String(value).padStart(width, "0");

/** Formats nanoseconds since the epoch exactly like Go's `t.UTC().Format(time.RFC3339Nano)`. */
export function formatRfc3339Nano(ns: bigint): string {
  // Floor division so that instants before 1970 get a positive fraction, as in Go.
  let days = ns / NS_PER_DAY;
  let nsOfDay = ns % NS_PER_DAY;
  if (nsOfDay < 0n) {
    nsOfDay += NS_PER_DAY;
    days -= 1n;
  }
  const { year, month, day } = civilFromDays(Number(days));
  const secondOfDay = Number(nsOfDay / NS_PER_SECOND);
  const fraction = nsOfDay % NS_PER_SECOND;
  const hour = Math.floor(secondOfDay / 3600);
  const minute = Math.floor((secondOfDay % 3600) / 60);
  const second = secondOfDay % 60;
  const yearText = year < 0 ? `-${pad(-year, 4)}` : pad(year, 4);
  const fractionText = fraction === 0n ? "" : `.${fraction.toString().padStart(9, "0").replace(/0+$/, "")}`;
  const date = `${yearText}-${pad(month, 2)}-${pad(day, 2)}`;
  return `${date}T${pad(hour, 2)}:${pad(minute, 2)}:${pad(second, 2)}${fractionText}Z`;
}

const DATE_PATTERN = /^(\d{4})-(\d{1,2})-(\d{1,2})(.*)$/s;
const TIME_PATTERN = /^([Tt ])(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))?$/;

/**
 * Parses an RFC 3339 timestamp (any offset, any number of fraction digits, digits beyond
 * nanoseconds truncated as Go does) into nanoseconds since the epoch. Also accepts the other
 * forms Go's YAML decoder accepts for `time.Time`: `2006-1-2 15:4:5.999999999` (UTC) and a
 * bare date `2006-1-2` (midnight UTC). Throws on anything else.
 */
export function parseRfc3339Nano(text: string): bigint {
  const fail = (reason: string): never => {
    throw new Error(`invalid timestamp ${JSON.stringify(text)}: ${reason}`);
  };
  const date = DATE_PATTERN.exec(text);
  if (date === null) {
    return fail("expected an RFC 3339 date-time such as 2021-10-01T20:10:05.10745462Z");
  }
  const [, yearText = "", monthText = "", dayText = "", rest = ""] = date;
  const year = Number(yearText);
  const month = Number(monthText);
  const day = Number(dayText);
  if (month < 1 || month > 12) {
    return fail("month out of range");
  }
  if (day < 1 || day > daysInMonth(year, month)) {
    return fail("day out of range");
  }

  let secondOfDay = 0;
  let fractionNs = 0n;
  let offsetSeconds = 0;
  if (rest !== "") {
    const time = TIME_PATTERN.exec(rest);
    if (time === null) {
      return fail("malformed time of day or offset");
    }
    const [, separator, hourText = "", minuteText = "", secondText = "", fractionText, zulu, sign, offH, offM] = time;
    const hasOffset = zulu !== undefined || sign !== undefined;
    // Go accepts "T" forms only with a zone and the space form only without one.
    if ((separator === " ") === hasOffset) {
      return fail(separator === " " ? "unexpected offset" : "missing offset (Z or ±hh:mm)");
    }
    const hour = Number(hourText);
    const minute = Number(minuteText);
    const second = Number(secondText);
    if (hour > 23 || minute > 59 || second > 59) {
      return fail("time of day out of range");
    }
    secondOfDay = hour * 3600 + minute * 60 + second;
    if (fractionText !== undefined) {
      fractionNs = BigInt(fractionText.slice(0, 9).padEnd(9, "0"));
    }
    if (sign !== undefined) {
      const offsetHours = Number(offH);
      const offsetMinutes = Number(offM);
      if (offsetHours > 23 || offsetMinutes > 59) {
        return fail("offset out of range");
      }
      offsetSeconds = (sign === "-" ? -1 : 1) * (offsetHours * 3600 + offsetMinutes * 60);
    }
  }

  const days = BigInt(daysFromCivil(year, month, day));
  const seconds = days * SECONDS_PER_DAY + BigInt(secondOfDay - offsetSeconds);
  return seconds * NS_PER_SECOND + fractionNs;
}
