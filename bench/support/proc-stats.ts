/** CPU time and memory of a process, read from Linux's /proc. */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

let ticksPerSecond: number | undefined;

/** `getconf CLK_TCK`: the unit of utime/stime in /proc/<pid>/stat (100 on almost every Linux). */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    let parsed = Number.NaN;
    try {
      parsed = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    } catch {
      // No getconf: use the Linux default below.
    }
    ticksPerSecond = Number.isInteger(parsed) && parsed > 0 ? parsed : 100;
  }
  return ticksPerSecond;
}

/** User plus system CPU seconds used so far by all threads of process `pid`. */
export function readCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Field 2 (comm) is in parentheses and may contain spaces: split after the last ')'.
  // What follows starts at field 3 (state); utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[14 - 3]);
  const stime = Number(fields[15 - 3]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) {
    throw new Error(`unexpected /proc/${pid}/stat: ${stat}`);
  }
  return (utime + stime) / clockTicksPerSecond();
}

/**
 * Like readCpuSeconds, plus the CPU time of its children that ended and were waited for (cutime,
 * cstime): for redis-server, whose AOF rewrites run in a forked child.
 */
export function readCpuSecondsWithChildren(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = [14, 15, 16, 17].map((field) => Number(fields[field - 3]));
  if (ticks.some((value) => !Number.isFinite(value))) {
    throw new Error(`unexpected /proc/${pid}/stat: ${stat}`);
  }
  return ticks.reduce((total, value) => total + value, 0) / clockTicksPerSecond();
}

/** CPU seconds of each process, 0 for one that is already gone. */
export function readCpuSecondsOfAll(pids: readonly number[]): number[] {
  return pids.map((pid) => {
    try {
      return readCpuSeconds(pid);
    } catch {
      return 0;
    }
  });
}

export interface ProcessMemory {
  /** VmHWM: the peak resident set size since the process started. */
  readonly peakRssBytes: number;
  /** VmRSS: the resident set size now. */
  readonly rssBytes: number;
}

export function readMemory(pid: number): ProcessMemory {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+)\\s+kB`, "m").exec(status);
    if (match === null) {
      throw new Error(`no ${name} in /proc/${pid}/status`);
    }
    return Number(match[1]) * 1024;
  };
  return { peakRssBytes: kib("VmHWM"), rssBytes: kib("VmRSS") };
}

/**
 * CPU seconds the whole machine spent busy (all CPUs, every process, from the
 * first line of /proc/stat: everything but idle and iowait). Compared with the
 * server's and the generators' own time, it shows load from other processes.
 */
export function readMachineBusySeconds(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
  const [label, ...values] = line.trim().split(/\s+/);
  if (label !== "cpu" || values.length < 8) {
    throw new Error(`unexpected /proc/stat: ${line}`);
  }
  const ticks = values.map(Number);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  // user nice system idle iowait irq softirq steal (guest time is already inside user).
  const total = ticks.slice(0, 8).reduce((sum, value) => sum + value, 0);
  return (total - idle) / clockTicksPerSecond();
}
