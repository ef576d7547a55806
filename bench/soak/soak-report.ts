/** The soak test's human summary (the JSON line carries the same figures). */
import type { LatencySummary } from "../support/percentiles.js";
import type { RssVerdict } from "./soak-rss.js";

export interface SoakSummaryInput {
  readonly durationS: number;
  readonly clients: number;
  readonly workers: number;
  readonly cacheMiB: number;
  readonly expiration: string;
  readonly ops: Record<string, number>;
  readonly calls: number;
  readonly outcomes: Record<string, Record<string, number>>;
  readonly expected: Record<string, number>;
  readonly latencyMs: Record<string, LatencySummary>;
  readonly publishedMiB: number;
  readonly fetchedMiB: number;
  readonly rss: RssVerdict;
  /** RSS once the final checks read every archived version back, and after idling. */
  readonly rssAfterVerifyMiB: number;
  readonly rssAfterIdleMiB: number;
  readonly cache: Record<string, string>;
  readonly serverCpuCores: number;
  readonly clientCpuCores: number;
  readonly checks: readonly { readonly name: string; readonly ok: boolean; readonly detail: string }[];
  readonly failures: readonly { readonly what: string; readonly detail: string }[];
}

const f1 = (value: number | null): string => (value === null ? "-" : value.toFixed(1));

export function soakSummary(input: SoakSummaryInput): string {
  const lines: string[] = [];
  const opsTotal = Object.entries(input.ops)
    .filter(([name]) => name !== "fetchLatestMovedOn")
    .reduce((sum, [, count]) => sum + count, 0);
  lines.push(
    `Soak: ${input.durationS} s, ${input.clients} clients in ${input.workers} processes, cache ${input.cacheMiB} MiB, expiration ${input.expiration}`,
  );
  lines.push(
    `  ${opsTotal} operations (${f1(opsTotal / input.durationS)}/s), ${input.calls} calls (${f1(input.calls / input.durationS)}/s); ` +
      `published ${f1(input.publishedMiB)} MiB, fetched ${f1(input.fetchedMiB)} MiB; ` +
      `server ${input.serverCpuCores.toFixed(2)} cores, load generators ${input.clientCpuCores.toFixed(2)} cores`,
  );
  lines.push(`  operations: ${Object.entries(input.ops).map(([name, count]) => `${name} ${count}`).join(", ")}`);
  lines.push("");
  lines.push("| method | outcomes | p50 ms | p99 ms | max ms |");
  lines.push("| --- | --- | ---: | ---: | ---: |");
  for (const [method, byCode] of Object.entries(input.outcomes).sort(([a], [b]) => a.localeCompare(b))) {
    const latency = input.latencyMs[method];
    const codes = Object.entries(byCode)
      .sort(([, a], [, b]) => b - a)
      .map(([code, count]) => `${code} ${count}`)
      .join(", ");
    lines.push(`| ${method} | ${codes} | ${f1(latency?.p50 ?? null)} | ${f1(latency?.p99 ?? null)} | ${f1(latency?.max ?? null)} |`);
  }
  lines.push("");
  lines.push("Allowed errors:");
  for (const [reason, count] of Object.entries(input.expected)) {
    lines.push(`  ${count} × ${reason}`);
  }
  const { rss } = input;
  lines.push("");
  lines.push(
    `Server RSS: warm-up (first ${rss.warmupSeconds.toFixed(0)} s) end ${f1(rss.warmupEndMiB)} MiB, max ${f1(rss.warmupMaxMiB)} MiB; ` +
      `run max ${f1(rss.maxMiB)} MiB (after warm-up ${f1(rss.afterWarmupMaxMiB)}); end ${f1(rss.endMiB)} MiB ` +
      `(limit ${f1(rss.limitMiB)}); slope after warm-up ${f1(rss.slopeMiBPerMin)} MiB/min; ` +
      `after the checks ${f1(input.rssAfterVerifyMiB)} MiB, after idling ${f1(input.rssAfterIdleMiB)} MiB`,
  );
  lines.push(
    `Cache at the end: used ${input.cache.cache_used_bytes ?? "?"} B in ${input.cache.cached_versions ?? "?"} versions; ` +
      `evictions: size ${input.cache.cache_evictions_size ?? "?"}, expired ${input.cache.cache_evictions_expired ?? "?"}`,
  );
  lines.push("");
  lines.push("Checks:");
  for (const check of input.checks) {
    lines.push(`  ${check.ok ? "PASS" : "FAIL"} ${check.name}: ${check.detail}`);
  }
  if (input.failures.length > 0) {
    lines.push("");
    lines.push("First failures:");
    for (const failure of input.failures.slice(0, 20)) {
      lines.push(`  - ${failure.what}: ${failure.detail}`);
    }
  }
  return lines.join("\n");
}
