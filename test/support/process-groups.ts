/** Child processes a test support module started in their own process groups, killed together. */
import type { ChildProcess } from "node:child_process";

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

/**
 * A set of live children whose groups `killAll` SIGKILLs; it also runs when the test process exits,
 * so no server outlives the suite even when a test fails before its own clean-up.
 */
export function liveProcessGroups(): { readonly live: Set<ChildProcess>; killAll(): void } {
  const live = new Set<ChildProcess>();
  const killAll = (): void => {
    for (const child of live) {
      signalGroup(child, "SIGKILL");
    }
    live.clear();
  };
  process.once("exit", killAll);
  return { live, killAll };
}
