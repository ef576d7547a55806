import { readdir } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * The server removes leftover temporary files in the background once its model listing is done
 * (issue #15); this waits until none of `paths` is in its directory any more, then resolves with
 * the ones still there after `deadlineMs` (an empty list: all gone). Not a speed check: the deadline
 * is only there so a clean-up that never comes fails the test instead of hanging it.
 */
export async function leftoversStillThere(paths: readonly string[], deadlineMs = 30_000): Promise<string[]> {
  const giveUpAt = Date.now() + deadlineMs;
  for (;;) {
    const remaining: string[] = [];
    for (const filePath of paths) {
      const names = await readdir(path.dirname(filePath)).catch(() => [] as string[]);
      if (names.includes(path.basename(filePath))) {
        remaining.push(filePath);
      }
    }
    if (remaining.length === 0 || Date.now() > giveUpAt) {
      return remaining;
    }
    await sleep(25);
  }
}

/**
 * The start-up clean-up's probe of the file system clock (src/archive/fs-archive-writes.ts): a
 * temporary file in the archive root for the time of an open, a stat and a removal, whenever the
 * background clean-up runs. A listing of the root taken meanwhile has it.
 */
const CLOCK_PROBE = /^\.cogment-ts-clock-probe\.tmp-[0-9a-f]{16}$/;

/** The archive root's entries, without the start-up clean-up's passing clock probe. */
export async function archiveRootEntries(archiveDir: string): Promise<string[]> {
  return (await readdir(archiveDir)).filter((name) => !CLOCK_PROBE.test(name));
}
