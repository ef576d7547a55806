/** The compact Markdown table of a run's medians (what goes into the README). */
import { type AggregatedRecord, type BenchRecord, DISTURBED_OTHER_CORES } from "./bench-record.js";
import type { MachineInfo } from "./machine-info.js";

type Metrics = BenchRecord["metrics"];

const HEADER = [
  "scenario",
  "setup",
  "throughput",
  "p50 / p99 ms",
  "server CPU s/GB",
  "CPU cores: server / clients / others",
  "server peak RSS MiB (budget)",
  "checks",
];

const SMALL_CALLS: Readonly<Record<string, string>> = {
  infos: "RetrieveVersionInfos([-1])",
  "create-version": "CreateVersion 1 KiB transient",
  "create-model": "CreateOrUpdateModel",
};

const STARTUP_CASES: Readonly<Record<string, string>> = {
  "registry-empty": "spawn → first served RPC, empty archive",
  "registry-unbundled": "spawn → first served RPC, empty archive, unbundled (dist/src/main.js)",
  floor: "spawn → first served RPC, bare grpc-js floor server",
  "node-e-0": "`node -e 0`, spawn → exit",
};

export function summaryTable(records: readonly AggregatedRecord[], machine: MachineInfo, repeats: number): string {
  const ceiling = Math.max(0, ...records.filter((r) => r.scenario === "ceiling").map((r) => r.metrics.MBps ?? 0));
  const rows = records.map((record) => {
    const cells = row(record, ceiling);
    if (record.runs < record.runsTotal) {
      cells[1] = `${cells[1] ?? ""} [${record.runs} of ${record.runsTotal} runs]`;
    }
    return cells;
  });
  const lines = [
    `Measured ${machine.date.slice(0, 10)} on ${machine.nproc} × ${machine.cpuModel}, Node ${machine.node}; ` +
      `${repeats === 1 ? "one run per scenario" : `medians of ${repeats} runs per scenario`}. ` +
      "MB = 10^6 bytes, GB = 10^9 bytes; % = share of the raw loopback TCP ceiling. " +
      `"others" = CPU used meanwhile by processes not of this bench (the machine is shared); runs with more than ${DISTURBED_OTHER_CORES} ` +
      'such cores are left out of a median when undisturbed runs exist ("[n of m runs]").',
    "",
    `| ${HEADER.join(" | ")} |`,
    `| ${HEADER.map(() => "---").join(" | ")} |`,
    ...rows.map((cells) => `| ${cells.join(" | ")} |`),
  ];
  return lines.join("\n");
}

function row(record: BenchRecord, ceilingMBps: number): string[] {
  const m = record.metrics;
  const p = record.params;
  const resources = [cpuPerGB(m), cores(m), rss(m)];
  switch (record.scenario) {
    case "sha256":
      return ["sha256 (micro)", `${String(p.implementation)}, ${String(p.size)}`, `${fmt(m.medianMBps)} MB/s`, "–", "–", "–", "–", "–"];
    case "hash-crossover":
      return [
        "hash-crossover (micro)",
        `${String(p.implementation)}, ${String(p.size)}, ${String(p.where)}`,
        `${fmt(m.mainCpuUsPerHash)} µs main-thread CPU per hash (${fmt(m.wallUsPerHash)} µs wall)`,
        "–",
        "–",
        "–",
        "–",
        "–",
      ];
    case "copy":
      return ["copy (micro)", `write ${String(p.body)} bodies into ${String(p.version)}`, `${fmt(m.medianMBps)} MB/s`, "–", "–", "–", "–", "–"];
    case "publish":
      return [
        "publish",
        `${String(p.versionMiB)} MiB, ${String(p.publishers ?? 1)} publisher(s), back to back; ${p.server === "main" ? "main.js" : "launcher"}, ${String(p.sha256)}${p.publisherClient === undefined ? "" : `, ${String(p.publisherClient)} client`}`,
        `${fmt(m.versionsPerSec)} versions/s · ${fmt(m.MBps)} MB/s${share(m.MBps, ceilingMBps)}`,
        `CreateVersion ${fmt(m.latencyP50Ms)} / ${fmt(m.latencyP99Ms)}`,
        // The clients' CPU per GB beside the server's: on 2 shared cores the publishers compete with it.
        m.clientCpuSecPerGB === undefined ? cpuPerGB(m) : `${cpuPerGB(m)} (clients ${fmt(m.clientCpuSecPerGB)})`,
        cores(m),
        rss(m),
        `${fmt(m.errors)} errors`,
      ];
    case "broadcast-poll":
    case "broadcast-update":
    case "cluster-broadcast-poll":
    case "cluster-broadcast-update": {
      const instances = p.instances === undefined ? "" : `${String(p.instances)} instances on Redis (CPU summed, largest RSS), `;
      const pace = p.publishIntervalMs === 0 ? "back to back" : `every ${String(p.publishIntervalMs)} ms`;
      const client = p.readerClient === "http2" ? "" : `, ${String(p.readerClient)} client`;
      const window = p.readerWindowKiB === 8192 ? "" : `, ${String(p.readerWindowKiB)} KiB reader window`;
      return [
        record.scenario,
        `${instances}${String(p.versionMiB)} MiB ${pace}, ${String(p.readers)} readers (${String(p.readerProcs)} procs${client}${window})`,
        `${fmt(m.deliveredMBps)} MB/s${share(m.deliveredMBps, ceilingMBps)} · ${fmt(m.publishedPerSec)} versions/s · ${pct(m.fetchedShare)} fetched`,
        `staleness ${fmt(m.stalenessP50Ms)} / ${fmt(m.stalenessP99Ms)} (start ${fmt(m.startAgeP50Ms)} + fetch ${fmt(m.fetchP50Ms)}, busy ${pct(m.readerBusyShare)})`,
        ...resources,
        `${fmt(m.hashMismatches)} mismatches, ${fmt(m.notFound)} NOT_FOUND, ${fmt(m.errors)} errors`,
      ];
    }
    case "metadata":
      return [
        "metadata",
        `${String(p.clients)} clients, RetrieveVersionInfos([-1])`,
        `${fmt(m.opsPerSec)} ops/s`,
        `${fmt(m.latencyP50Ms)} / ${fmt(m.latencyP99Ms)}`,
        `– (${fmt(m.serverCpuUsPerOp)} µs/op)`,
        cores(m),
        rss(m),
        `${fmt(m.errors)} errors`,
      ];
    case "small":
      return [
        "small",
        `${String(p.clients)} ${p.client === undefined ? "" : `${String(p.client)} `}clients (${String(p.clientProcs)} procs), ${SMALL_CALLS[String(p.call)] ?? String(p.call)}; ${String(p.server)}`,
        `${fmt(m.opsPerSec)} ops/s (${fmt(m.wallUsPerOp)} µs/op wall)`,
        `${fmt(m.latencyP50Ms)} / ${fmt(m.latencyP99Ms)}`,
        `– (${fmt(m.serverCpuUsPerOp)} µs/op)`,
        cores(m),
        rss(m),
        `${fmt(m.errors)} errors`,
      ];
    case "startup":
      return [
        "startup",
        p.case === "registry-archive"
          ? `spawn → first served RPC, ${String(p.archivedVersions)} archived versions`
          : (STARTUP_CASES[String(p.case)] ?? String(p.case)),
        `${fmt(m.spawnToReadyMs)} ms median (p90 ${fmt(m.p90Ms)}, ${fmt(m.minMs)}–${fmt(m.maxMs)}, ${fmt(m.runs)} runs)`,
        "–",
        "–",
        "–",
        "–",
        "–",
      ];
    case "archived-read":
      return [
        "archived-read",
        `${String(p.versions)} × ${String(p.versionMiB)} MiB archived, read by a restarted server (page cache warm)`,
        `first read ${fmt(m.firstReadMBps)} MB/s (min ${fmt(m.firstReadMinMBps)}) · second ${fmt(m.secondReadMBps)} MB/s (raw-socket reader)` +
          (m.nodeHttp2FirstReadMBps === undefined
            ? ""
            : `; node:http2 reader: first ${fmt(m.nodeHttp2FirstReadMBps)} · second ${fmt(m.nodeHttp2SecondReadMBps)} MB/s`),
        "–",
        m.serverCpuSPerGB === undefined ? "–" : `${fmt(m.serverCpuSPerGB)} (reader ${fmt(m.readerCpuSPerGB)})`,
        m.serverCpuCores === undefined ? "–" : cores(m),
        rss(m),
        `${fmt(m.hashMismatches)} mismatches`,
      ];
    case "ceiling":
      return [
        "ceiling",
        `raw TCP loopback, ${String(p.connections)} connection(s), ${fmt(m.GB)} GB`,
        `${fmt(m.MBps)} MB/s`,
        "–",
        `sender ${fmt(m.senderCpuSecPerGB)} · receiver ${fmt(m.receiverCpuSecPerGB)}`,
        `sender ${fmt(m.senderCpuCores)} · receiver ${fmt(m.receiverCpuCores)} / ${fmt(m.otherCpuCores)}`,
        "–",
        "–",
      ];
    case "window":
      return [
        "window",
        `${String(p.versionMiB)} MiB through a ${String(p.rttMs)} ms RTT proxy, server window ${String(p.serverWindow)}`,
        `upload ${fmt(m.uploadMBps)} MB/s · download ${fmt(m.downloadMBps)} MB/s` +
          (m.downloadDefaultClientWindowMBps === null || m.downloadDefaultClientWindowMBps === undefined
            ? ""
            : ` (client's default 64 KiB window: ${fmt(m.downloadDefaultClientWindowMBps)})`),
        "–",
        cpuPerGB(m),
        "–",
        rss(m),
        `${fmt(m.hashMismatches)} mismatches`,
      ];
    case "archive":
      return [
        "archive",
        `${String(p.versionMiB)} MiB archived, 1 publisher, back to back; ${String(p.store)}`,
        `${fmt(m.versionsPerSec)} versions/s · ${fmt(m.MBps)} MB/s`,
        `CreateVersion ${fmt(m.latencyP50Ms)} / ${fmt(m.latencyP99Ms)}`,
        ...resources,
        `${fmt(m.errors)} errors${storeCpu(m)}`,
      ];
    case "fetch-archived":
      return [
        "fetch-archived",
        `${String(p.versionMiB)} MiB archived, not cached, 1 client, back to back; ${String(p.store)}`,
        `${fmt(m.MBps)} MB/s`,
        `fetch ${fmt(m.fetchP50Ms)} / ${fmt(m.fetchP99Ms)}`,
        ...resources,
        `${fmt(m.hashMismatches)} mismatches${storeCpu(m)}`,
      ];
    default:
      return [record.scenario, JSON.stringify(p), "", "", "", "", "", ""];
  }
}

/** The S3 test server's CPU (counted in "others" where no store column is): s per GB stored or served. */
function storeCpu(m: Metrics): string {
  return typeof m.storeCpuSecPerGB === "number" ? `; s3rver ${fmt(m.storeCpuSecPerGB)} CPU s/GB` : "";
}

function cpuPerGB(m: Metrics): string {
  return fmt(m.serverCpuSecPerGB);
}

function cores(m: Metrics): string {
  return `${fmt(m.serverCpuCores)} / ${fmt(m.clientCpuCores)} / ${fmt(m.otherCpuCores)}`;
}

function rss(m: Metrics): string {
  return `${fmt(m.serverPeakRssMiB)} (${fmt(m.cacheBudgetMiB)})`;
}

function share(value: number | null | undefined, ceiling: number): string {
  return typeof value === "number" && ceiling > 0 ? ` (${Math.round((100 * value) / ceiling)}%)` : "";
}

/** A share (0..1) as a whole percentage. */
export function pct(value: number | null | undefined): string {
  return typeof value === "number" ? `${Math.round(100 * value)}%` : "–";
}

/** Three significant digits, no exponent. */
export function fmt(value: number | null | undefined): string {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    return "–";
  }
  const magnitude = Math.abs(value);
  if (magnitude >= 100 || Number.isInteger(value)) {
    return Math.round(value).toString();
  }
  return magnitude >= 10 ? value.toFixed(1) : magnitude >= 1 ? value.toFixed(2) : value.toFixed(3);
}
