import type { IncomingHttpHeaders } from "node:http2";

/**
 * The longest deadline a Node.js timer can wait for (2^31 - 1 ms, about 24.8 days). grpc-js (1.14)
 * reads `grpc-timeout` as `(value * unit) | 0`: a longer deadline, e.g. a client's 30 days
 * ("2592000S"), wraps to a negative number and the call fails at once with DEADLINE_EXCEEDED.
 */
export const MAX_TIMER_MS = 2_147_483_647;

/** The longest grpc-timeout whose milliseconds fit a timer: 2147483 seconds. */
export const LONGEST_GRPC_TIMEOUT = `${Math.floor(MAX_TIMER_MS / 1000)}S`;

/** grpc-js's reading of grpc-timeout (server-interceptors.js: DEADLINE_REGEX, deadlineUnitsToMs, handleTimeoutHeader). */
export const DEADLINE_PATTERN = /(\d{1,8})\s*([HMSmun])/;
export const DEADLINE_UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/**
 * Shortens a request's `grpc-timeout` longer than a timer can wait to LONGEST_GRPC_TIMEOUT (for a
 * call, 24.8 days is as good as never), so that grpc-js and the CreateVersion fast path see a
 * deadline they can arm. A malformed value is left for them to refuse.
 */
export function clampGrpcTimeout(headers: IncomingHttpHeaders): void {
  const timeout = headers["grpc-timeout"];
  if (typeof timeout !== "string") {
    return;
  }
  const match = DEADLINE_PATTERN.exec(timeout);
  if (match !== null && Number(match[1]) * (DEADLINE_UNIT_MS[match[2] as string] as number) > MAX_TIMER_MS) {
    headers["grpc-timeout"] = LONGEST_GRPC_TIMEOUT;
  }
}
