/**
 * What one soak traffic process counts: every call's outcome by method and gRPC
 * code, the allowed errors by reason, the failures (with the first few in full),
 * and a bounded sample of each method's latencies.
 */
import * as grpc from "@grpc/grpc-js";
import type { Failure } from "./soak-protocol.js";

const MAX_FAILURE_DETAILS = 40;
const LATENCY_SAMPLES_PER_METHOD = 4096;

export function codeName(code: number): string {
  return grpc.status[code] ?? `CODE_${code}`;
}

export class SoakTally {
  readonly outcomes: Record<string, Record<string, number>> = {};
  readonly expected: Record<string, number> = {};
  readonly ops: Record<string, number> = {};
  readonly failures: Failure[] = [];
  failureCount = 0;
  private readonly samples: Record<string, number[]> = {};
  private readonly seen: Record<string, number> = {};

  /** One call ended with `code` after `ms`. */
  call(method: string, code: number, ms: number): void {
    const byCode = (this.outcomes[method] ??= {});
    const name = codeName(code);
    byCode[name] = (byCode[name] ?? 0) + 1;
    this.sample(method, ms);
  }

  allowed(reason: string): void {
    this.expected[reason] = (this.expected[reason] ?? 0) + 1;
  }

  fail(what: string, detail: string): void {
    this.failureCount++;
    if (this.failures.length < MAX_FAILURE_DETAILS) {
      this.failures.push({ what, detail: detail.slice(0, 500) });
    }
  }

  op(name: string): void {
    this.ops[name] = (this.ops[name] ?? 0) + 1;
  }

  latencySamples(): Record<string, readonly number[]> {
    return this.samples;
  }

  /** Reservoir sampling: a uniform sample of every latency seen, of bounded size. */
  private sample(method: string, ms: number): void {
    const seen = (this.seen[method] = (this.seen[method] ?? 0) + 1);
    const list = (this.samples[method] ??= []);
    if (list.length < LATENCY_SAMPLES_PER_METHOD) {
      list.push(ms);
    } else {
      const slot = Math.floor(Math.random() * seen);
      if (slot < LATENCY_SAMPLES_PER_METHOD) {
        list[slot] = ms;
      }
    }
  }
}
