/* Parsers of configuration values: each returns the value or throws InvalidValue. */
import { DurationError, parseGoDuration } from "./duration.js";

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

export const LOG_LEVELS: readonly LogLevel[] = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

/** Thrown by value parsers; the message is an optional detail shown before the accepted form. */
export class InvalidValue extends Error {}

export const integer =
  (min: number, max: number) =>
  (value: string): number => {
    // Number() alone would also accept "1e3", "0x10", " 5" or "-0".
    const n = /^[0-9]+$/.test(value) ? Number(value) : Number.NaN;
    if (!(n >= min && n <= max)) {
      throw new InvalidValue();
    }
    return n;
  };

export const nonNegativeDuration = (value: string): number => {
  let ms: number;
  try {
    ms = parseGoDuration(value);
  } catch (error) {
    if (error instanceof DurationError) {
      throw new InvalidValue(error.reason);
    }
    throw error;
  }
  if (ms < 0) {
    throw new InvalidValue("negative duration");
  }
  return ms;
};

// Go's strconv.ParseBool.
const BOOLEANS: ReadonlyMap<string, boolean> = new Map([
  ...["1", "t", "T", "TRUE", "true", "True"].map((s): [string, boolean] => [s, true]),
  ...["0", "f", "F", "FALSE", "false", "False"].map((s): [string, boolean] => [s, false]),
]);

export const boolean = (value: string): boolean => {
  const parsed = BOOLEANS.get(value);
  if (parsed === undefined) {
    throw new InvalidValue();
  }
  return parsed;
};

export const logLevel = (value: string): LogLevel => {
  const lower = value.toLowerCase();
  const level = LOG_LEVELS.find((l) => l === lower);
  if (level === undefined) {
    throw new InvalidValue();
  }
  return level;
};

export const DURATION_UNITS = "units ns, us, ms, s, m, h";

// Node's timers fire at once past 2^31 - 1 ms (about 596 hours).
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A duration a timer can wait for: at most 596h (Node's timers fire at once past 2^31 - 1 ms). */
export const timerDuration = (value: string): number => {
  const ms = nonNegativeDuration(value);
  if (ms > MAX_TIMER_MS) {
    throw new InvalidValue("longer than 596h");
  }
  return ms;
};
