/** What the figures were measured on: date, Node, CPU count and model. */
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";

export interface MachineInfo {
  readonly date: string;
  readonly node: string;
  readonly nproc: number;
  readonly cpuModel: string;
}

export function machineInfo(): MachineInfo {
  let cpuModel = "unknown";
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    cpuModel = match?.[1]?.trim() ?? cpuModel;
  } catch {
    // Not Linux: keep "unknown".
  }
  return { date: new Date().toISOString(), node: process.version, nproc: availableParallelism(), cpuModel };
}
