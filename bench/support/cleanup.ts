/**
 * Last-resort cleanup: the child processes and temporary directories the bench
 * created are killed and removed when the bench exits, even after a failure or
 * Ctrl-C. The normal path stops them itself; this only catches what is left.
 * Only processes started here are ever signalled, each by its own pid.
 */
import type { ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let installed = false;

function install(): void {
  if (installed) {
    return;
  }
  installed = true;
  process.once("exit", cleanupNow);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      cleanupNow();
      process.exit(signal === "SIGINT" ? 130 : 143);
    });
  }
}

export function trackChild(child: ChildProcess): void {
  install();
  children.add(child);
  child.once("exit", () => children.delete(child));
}

export function trackTempDir(path: string): void {
  install();
  tempDirs.add(path);
}

export function removeTempDir(path: string): void {
  rmSync(path, { recursive: true, force: true });
  tempDirs.delete(path);
}

/** Kills the children still running and removes the directories still there (synchronous: safe in 'exit'). */
export function cleanupNow(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }
  }
  children.clear();
  for (const path of tempDirs) {
    try {
      rmSync(path, { recursive: true, force: true });
    } catch {
      // Best effort at exit.
    }
  }
  tempDirs.clear();
}
