/** Child processes a test support module started in their own process groups, killed together. */
import type { ChildProcess } from "node:child_process";
import { constants } from "node:os";

/** Sends `signal` to the child's process group, if it still runs. */
export function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  }
}

/** The signals that end a test process from outside (a runner's timeout, CI's cancel, Ctrl-C). */
const ENDING_SIGNALS: readonly NodeJS.Signals[] = ["SIGTERM", "SIGINT", "SIGHUP"];

const killers = new Set<() => void>();

function killEverything(): void {
  for (const kill of killers) {
    kill();
  }
}

/**
 * Runs `killAll` when this process exits, and also when a signal ends it: Node runs no "exit"
 * listener then, so the children of a test file killed mid-test (a timeout, a cancelled CI job) would
 * outlive it. One handler per signal for the whole process: it runs every `killAll` given here, then
 * exits with 128 + the signal's number, as a shell reports a process the signal ended.
 */
export function killAtExit(killAll: () => void): void {
  if (killers.size === 0) {
    process.once("exit", killEverything);
    for (const signal of ENDING_SIGNALS) {
      process.once(signal, () => {
        killEverything();
        process.exit(128 + constants.signals[signal]);
      });
    }
  }
  killers.add(killAll);
}

/**
 * A set of live children whose groups `killAll` SIGKILLs; it also runs when the test process exits
 * or a signal ends it (killAtExit), so no server outlives the suite even when a test fails, or its
 * file is killed, before its own clean-up.
 */
export function liveProcessGroups(): { readonly live: Set<ChildProcess>; killAll(): void } {
  const live = new Set<ChildProcess>();
  const killAll = (): void => {
    for (const child of live) {
      signalGroup(child, "SIGKILL");
    }
    live.clear();
  };
  killAtExit(killAll);
  return { live, killAll };
}
