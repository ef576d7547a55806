/**
 * The server's resident memory over a soak run: VmRSS sampled every second,
 * and the verdict "it stopped growing after warm-up".
 */
import { readMemory } from "../support/proc-stats.js";
import { MIB } from "../support/server-process.js";

export interface RssSample {
  /** Seconds since the run's start (negative before it, past its duration after it). */
  readonly t: number;
  readonly rssBytes: number;
}

export interface RssSampler {
  readonly samples: readonly RssSample[];
  /** Takes one sample now (also done every `periodMs`). */
  sampleNow(): RssSample | undefined;
  stop(): void;
}

/** Samples /proc/<pid>/status every `periodMs`; the first sample is taken at once. */
export function startRssSampler(pid: number, runStartedAt: number, periodMs = 1000): RssSampler {
  const samples: RssSample[] = [];
  const sampleNow = (): RssSample | undefined => {
    try {
      const sample = { t: (Date.now() - runStartedAt) / 1000, rssBytes: readMemory(pid).rssBytes };
      samples.push(sample);
      return sample;
    } catch {
      return undefined; // the process is gone
    }
  };
  sampleNow();
  const timer = setInterval(sampleNow, periodMs);
  return { samples, sampleNow, stop: () => clearInterval(timer) };
}

export interface RssVerdict {
  readonly warmupSeconds: number;
  /** RSS at the last sample of the warm-up. */
  readonly warmupEndMiB: number;
  /** Largest RSS during the warm-up. */
  readonly warmupMaxMiB: number;
  /** Largest RSS during the whole run. */
  readonly maxMiB: number;
  /** Largest RSS after the warm-up. */
  readonly afterWarmupMaxMiB: number;
  /** RSS at the run's last sample. */
  readonly endMiB: number;
  /** Least-squares slope of RSS over the samples after the warm-up, MiB per minute. */
  readonly slopeMiBPerMin: number | null;
  /** endMiB must not exceed this: warmupMax × factor + allowance. */
  readonly limitMiB: number;
  readonly ok: boolean;
}

export interface RssRule {
  readonly factor: number;
  readonly allowanceMiB: number;
}

export const DEFAULT_RSS_RULE: RssRule = { factor: 1.2, allowanceMiB: 32 };

/** Judges the samples of the run (0 ≤ t ≤ durationSeconds). */
export function judgeRss(all: readonly RssSample[], durationSeconds: number, warmupShare: number, rule: RssRule = DEFAULT_RSS_RULE): RssVerdict {
  const run = all.filter((sample) => sample.t >= 0 && sample.t <= durationSeconds + 0.5);
  const warmupSeconds = durationSeconds * warmupShare;
  const warmup = run.filter((sample) => sample.t <= warmupSeconds);
  const after = run.filter((sample) => sample.t > warmupSeconds);
  const mib = (bytes: number): number => bytes / MIB;
  const maxOf = (samples: readonly RssSample[]): number => samples.reduce((max, sample) => Math.max(max, sample.rssBytes), 0);
  const warmupMaxMiB = mib(maxOf(warmup));
  const endMiB = mib(run[run.length - 1]?.rssBytes ?? 0);
  const limitMiB = warmupMaxMiB * rule.factor + rule.allowanceMiB;
  return {
    warmupSeconds,
    warmupEndMiB: mib(warmup[warmup.length - 1]?.rssBytes ?? 0),
    warmupMaxMiB,
    maxMiB: mib(maxOf(run)),
    afterWarmupMaxMiB: mib(maxOf(after)),
    endMiB,
    slopeMiBPerMin: slope(after),
    limitMiB,
    ok: warmup.length > 0 && after.length > 0 && endMiB <= limitMiB,
  };
}

function slope(samples: readonly RssSample[]): number | null {
  if (samples.length < 3) {
    return null;
  }
  const n = samples.length;
  const meanT = samples.reduce((sum, s) => sum + s.t, 0) / n;
  const meanR = samples.reduce((sum, s) => sum + s.rssBytes / MIB, 0) / n;
  let num = 0;
  let den = 0;
  for (const s of samples) {
    num += (s.t - meanT) * (s.rssBytes / MIB - meanR);
    den += (s.t - meanT) ** 2;
  }
  return den === 0 ? null : (num / den) * 60;
}
