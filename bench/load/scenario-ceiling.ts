/**
 * The physical limit of this machine for moving bytes between two processes
 * over loopback TCP: every other throughput can be read as a fraction of it.
 */
import type { BenchRecord } from "../support/bench-record.js";
import { sharedNow } from "../support/clock.js";
import { DRAIN_GRACE_MS } from "./generator-protocol.js";
import { type Generator, killAll, spawnGenerator } from "./generators.js";
import { readMachineBusySeconds } from "../support/proc-stats.js";
import { GB, MB } from "./scenario-support.js";
import { MIB } from "../support/server-process.js";

export interface CeilingScenario {
  readonly bytes: number;
  readonly connections: number;
}

const BUFFER_BYTES = 2 * MIB;
const TIMEOUT_MS = 120_000;

export async function runCeiling(scenario: CeilingScenario): Promise<BenchRecord> {
  const generators: Generator[] = [];
  try {
    const source = spawnGenerator({
      role: "tcp-source",
      bytes: scenario.bytes,
      connections: scenario.connections,
      writeBytes: BUFFER_BYTES,
    });
    generators.push(source);
    const port = await source.ready;
    if (port === undefined) {
      throw new Error("the TCP source reported no port");
    }
    const sink = spawnGenerator({
      role: "tcp-sink",
      port,
      bytes: scenario.bytes,
      connections: scenario.connections,
      readBytes: BUFFER_BYTES,
    });
    generators.push(sink);
    await sink.ready;
    const unwindowed = { windowStart: sharedNow(), windowEnd: Number.POSITIVE_INFINITY };
    const sourceCpu0 = source.cpuSeconds();
    const sinkCpu0 = sink.cpuSeconds();
    const machine0 = readMachineBusySeconds();
    sink.start(unwindowed);
    source.start(unwindowed);
    const sunk = await sink.resultWithin(TIMEOUT_MS);
    const sourceCpu = source.cpuSeconds() - sourceCpu0;
    const sinkCpu = sink.cpuSeconds() - sinkCpu0;
    const machineBusy = readMachineBusySeconds() - machine0;
    const sent = await source.resultWithin(DRAIN_GRACE_MS);
    if (sunk.role !== "tcp-sink" || sent.role !== "tcp-source") {
      throw new Error("unexpected ceiling results");
    }
    const seconds = (sunk.lastByteAt - sent.startedAt) / 1000;
    const gigabytes = sunk.bytes / GB;
    return {
      scenario: "ceiling",
      params: { connections: scenario.connections },
      metrics: {
        GB: gigabytes,
        MBps: sunk.bytes / MB / seconds,
        senderCpuSecPerGB: sourceCpu / gigabytes,
        receiverCpuSecPerGB: sinkCpu / gigabytes,
        senderCpuCores: sourceCpu / seconds,
        receiverCpuCores: sinkCpu / seconds,
        otherCpuCores: Math.max(0, machineBusy - sourceCpu - sinkCpu) / seconds,
      },
    };
  } finally {
    killAll(generators);
  }
}
