import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { AggregatedRecord } from "../../bench/support/bench-record.js";
import { REFERENCE_READER_PROCS, checkGoals, goalsMarkdown } from "../../bench/support/goals.js";

function broadcast(
  mode: "poll" | "update",
  readerProcs: number,
  metrics: { stalenessP50Ms: number; serverCpuSecPerGB: number; fetchedShare: number },
): AggregatedRecord {
  return {
    scenario: `broadcast-${mode}`,
    params: {
      versionMiB: 16,
      readers: 8,
      publishIntervalMs: 0,
      readerProcs,
      readerClient: "http2",
      readerWindowKiB: 8192,
      cacheMiB: 1024,
    },
    metrics: { ...metrics, hashMismatches: 0, rssOverBudgetMiB: 100 },
    runs: 1,
    runsTotal: 1,
    ranges: {},
  };
}

function check(records: readonly AggregatedRecord[], goal: string): { met: boolean | undefined; detail: string } {
  const found = checkGoals(records).find((entry) => entry.goal.startsWith(goal));
  assert.ok(found, `no check for ${goal}`);
  return found;
}

describe("bench goals", () => {
  test("the reference load is the split of REFERENCE_READER_PROCS processes, not the others", () => {
    const records = [
      broadcast("poll", 2, { stalenessP50Ms: 290, serverCpuSecPerGB: 0.9, fetchedShare: 0.67 }),
      broadcast("update", 2, { stalenessP50Ms: 300, serverCpuSecPerGB: 2, fetchedShare: 0.74 }),
      broadcast("poll", REFERENCE_READER_PROCS, { stalenessP50Ms: 225, serverCpuSecPerGB: 0.99, fetchedShare: 0.99 }),
      broadcast("update", REFERENCE_READER_PROCS, { stalenessP50Ms: 197, serverCpuSecPerGB: 0.84, fetchedShare: 1 }),
    ];
    assert.deepEqual(check(records, "server CPU"), {
      goal: "server CPU ≤ 1 s per GB delivered (16 MiB, back to back, 8 readers)",
      met: true,
      detail: "broadcast-poll 0.990; broadcast-update 0.840",
    });
    assert.deepEqual(check(records, "VersionUpdate median staleness"), {
      goal: "VersionUpdate median staleness lower than polling (reference load)",
      met: true,
      detail: "update 197.0 ms vs poll 225.0 ms; readers fetched 99% / 100% of the versions (poll / update)",
    });
  });

  test("the CPU goal names the raw TCP ceiling's cost of the same run", () => {
    const ceiling: AggregatedRecord = {
      scenario: "ceiling",
      params: { connections: 1 },
      metrics: { senderCpuSecPerGB: 0.219 },
      runs: 1,
      runsTotal: 1,
      ranges: {},
    };
    const records = [
      broadcast("poll", REFERENCE_READER_PROCS, { stalenessP50Ms: 270, serverCpuSecPerGB: 1.12, fetchedShare: 1 }),
      broadcast("update", REFERENCE_READER_PROCS, { stalenessP50Ms: 224, serverCpuSecPerGB: 0.984, fetchedShare: 1 }),
      ceiling,
    ];
    assert.deepEqual(check(records, "server CPU"), {
      goal: "server CPU ≤ 1 s per GB delivered (16 MiB, back to back, 8 readers)",
      met: false,
      detail:
        "broadcast-poll 1.12; broadcast-update 0.984 " +
        "(raw TCP ceiling's sender in this run: 0.219 s/GB; ~0.20 on this box at its usual speed)",
    });
  });

  test("a reference run whose readers fell behind says so", () => {
    const records = [
      broadcast("poll", REFERENCE_READER_PROCS, { stalenessP50Ms: 290, serverCpuSecPerGB: 0.9, fetchedShare: 0.67 }),
      broadcast("update", REFERENCE_READER_PROCS, { stalenessP50Ms: 300, serverCpuSecPerGB: 1.2, fetchedShare: 0.98 }),
    ];
    assert.equal(check(records, "server CPU").met, false);
    const staleness = check(records, "VersionUpdate median staleness");
    assert.equal(staleness.met, false);
    assert.equal(
      staleness.detail,
      "update 300.0 ms vs poll 290.0 ms; readers fetched 67% / 98% of the versions (poll / update): " +
        "they fell behind, so this compares the load generators more than the server",
    );
  });

  test("without a reference run the goals are not measured", () => {
    const records = [broadcast("poll", 1, { stalenessP50Ms: 100, serverCpuSecPerGB: 0.5, fetchedShare: 1 })];
    const text = goalsMarkdown(checkGoals(records));
    assert.match(text, /^- NOT MEASURED: server CPU ≤ 1 s per GB delivered/m);
    assert.match(text, /^- NOT MEASURED: VersionUpdate median staleness lower than polling \(reference load\): update – ms vs poll – ms$/m);
  });
});
