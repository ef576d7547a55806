import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "node:test";
import { onCleanup } from "../support/cleanup.js";

const PROCESS_GROUPS = new URL("../support/process-groups.js", import.meta.url).href;

/** A test process that started a child in its own group (as the Redis, S3 and server helpers do), then waits. */
const FIXTURE = `
import { spawn } from "node:child_process";
import { liveProcessGroups } from ${JSON.stringify(PROCESS_GROUPS)};
const { live } = liveProcessGroups();
const child = spawn("sleep", ["600"], { detached: true, stdio: "ignore" });
live.add(child);
console.log(child.pid);
setInterval(() => undefined, 1000);
`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  test(`a test process ended by ${signal} kills the process groups it started first, and exits with 128 + the signal's number`, async (t) => {
    const fixture = spawn(process.execPath, ["--input-type=module", "-e", FIXTURE], { stdio: ["ignore", "pipe", "inherit"] });
    const started: { grandchild?: number } = {};
    onCleanup(t, () => {
      fixture.kill("SIGKILL");
      if (started.grandchild !== undefined && alive(started.grandchild)) {
        process.kill(-started.grandchild, "SIGKILL");
      }
    });
    const [line] = (await once(createInterface({ input: fixture.stdout }), "line")) as [string];
    const grandchild = Number(line);
    started.grandchild = grandchild;
    assert.ok(Number.isInteger(grandchild) && alive(grandchild), `the fixture's child runs (${line})`);
    const exited = once(fixture, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
    fixture.kill(signal);
    assert.deepEqual(await exited, [signal === "SIGTERM" ? 143 : 130, null]);
    // SIGKILL'd by the fixture before it exited; reaped by init meanwhile.
    for (const deadline = Date.now() + 10_000; alive(grandchild) && Date.now() < deadline; ) {
      await sleep(20);
    }
    assert.equal(alive(grandchild), false, "the child's group was killed with the test process");
  });
}
