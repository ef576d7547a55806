/** Closed-loop callers: each client calls back to back until the window ends; latencies are kept for calls that ended inside it. */
import { errorText } from "../support/bench-client.js";
import { sharedNow, sleep } from "../support/clock.js";
import type { MeasuredWindow } from "./generator-protocol.js";

const MAX_ERRORS = 100;

export interface CallLoopsResult {
  readonly latenciesMs: number[];
  readonly errors: number;
  readonly firstError: string | undefined;
}

/**
 * Runs `call(client, n)` (n = 1, 2, … per client) on every client at once until the window ends,
 * `stop` aborts, or MAX_ERRORS calls failed in all; then closes every client.
 */
export async function runCallLoops<C extends { close(): void }>(
  clients: readonly C[],
  call: (client: C, index: number, n: number) => Promise<unknown>,
  window: MeasuredWindow,
  stop: AbortSignal,
): Promise<CallLoopsResult> {
  const latenciesMs: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const loop = async (client: C, index: number): Promise<void> => {
    for (let n = 1; !stop.aborted && sharedNow() < window.windowEnd && errors < MAX_ERRORS; n++) {
      const startedAt = sharedNow();
      try {
        await call(client, index, n);
      } catch (error) {
        errors++;
        firstError ??= errorText(error);
        await sleep(10);
        continue;
      }
      const endedAt = sharedNow();
      if (endedAt >= window.windowStart && endedAt < window.windowEnd) {
        latenciesMs.push(endedAt - startedAt);
      }
    }
  };
  try {
    await Promise.all(clients.map(loop));
  } finally {
    for (const client of clients) {
      client.close();
    }
  }
  return { latenciesMs, errors, firstError };
}
