/**
 * Entry of a soak traffic process (forked by soak.ts): runs `clients` soak
 * clients, each on its own connection, from the window's start to its end,
 * then reports what it counted over IPC.
 *
 * Bounded: no operation starts after the window's end (or past the per-client
 * operation cap); operations still running `graceMs` after the end are
 * abandoned (their connections closed); a failsafe exits the process later still.
 */
import { randomFillSync } from "node:crypto";
import { createBenchClient } from "../support/bench-client.js";
import { sendToParent } from "../support/bench-child.js";
import { sharedNow, sleepUntil } from "../support/clock.js";
import { SoakCalls } from "./soak-calls.js";
import { KnownVersions } from "./soak-known.js";
import type { SoakChildMessage, SoakParentMessage, SoakResult, SoakTask, SoakWindow } from "./soak-protocol.js";
import { SoakTally } from "./soak-tally.js";
import { SoakClient, type TrafficState, pickOp } from "./soak-traffic.js";

const POOL_BYTES = 8 * 1024 * 1024;
const FAILSAFE_MARGIN_MS = 15_000;

const send: (message: SoakChildMessage) => Promise<void> = sendToParent;

async function run(task: SoakTask, window: SoakWindow, graceMs: number): Promise<SoakResult> {
  const state: TrafficState = {
    task,
    tally: new SoakTally(),
    known: new KnownVersions(),
    acks: [],
    latestFetches: [],
    pool: randomFillSync(Buffer.allocUnsafe(Math.max(POOL_BYTES, task.maxBytes))),
    bytesPublished: 0,
    bytesFetched: 0,
  };
  const clients = Array.from({ length: task.clients }, () => createBenchClient(task.address));
  let running = 0;
  const loop = async (index: number): Promise<void> => {
    const client = clients[index];
    if (client === undefined) {
      return;
    }
    const soak = new SoakClient(state, new SoakCalls(client, state.tally, task.callDeadlineMs), task.firstClient + index);
    // Spread the first calls over 100 ms rather than all at the same instant.
    await sleepUntil(window.startAt + Math.random() * 100);
    for (let ops = 0; ops < task.maxOpsPerClient && sharedNow() < window.endAt; ops++) {
      const op = pickOp(task.mix);
      state.tally.op(op);
      running++;
      try {
        await soak.run(op);
      } catch (error) {
        state.tally.fail(`exception in ${op}`, error instanceof Error ? (error.stack ?? error.message) : String(error));
      } finally {
        running--;
      }
    }
  };
  let graceTimer: NodeJS.Timeout | undefined;
  const graceOver = new Promise<void>((resolve) => {
    graceTimer = setTimeout(resolve, Math.max(0, window.endAt + graceMs - sharedNow()));
  });
  await Promise.race([Promise.all(clients.map((_, index) => loop(index))), graceOver]);
  clearTimeout(graceTimer);
  const abandoned = running;
  if (abandoned > 0) {
    state.tally.fail("abandoned", `${abandoned} operation(s) still running ${graceMs} ms after the end of the run`);
  }
  for (const client of clients) {
    client.close();
  }
  const { tally } = state;
  return {
    worker: task.worker,
    outcomes: tally.outcomes,
    expected: tally.expected,
    failureCount: tally.failureCount,
    failures: tally.failures,
    ops: tally.ops,
    acks: state.acks,
    latestFetches: state.latestFetches,
    latencySamples: tally.latencySamples(),
    bytesPublished: state.bytesPublished,
    bytesFetched: state.bytesFetched,
    abandoned,
  };
}

function main(): void {
  process.on("disconnect", () => process.exit(1));
  let task: SoakTask | undefined;
  let started = false;
  process.on("message", (message: SoakParentMessage) => {
    if (message.type === "task") {
      task = message.task;
      void send({ type: "ready" });
    } else if (message.type === "start" && task !== undefined && !started) {
      started = true;
      const { window, graceMs } = message;
      setTimeout(
        () => void send({ type: "failed", message: "failsafe: the run did not end in time" }).then(() => process.exit(3)),
        Math.max(0, window.endAt + graceMs + FAILSAFE_MARGIN_MS - sharedNow()),
      ).unref();
      run(task, window, graceMs).then(
        (result) => send({ type: "result", result }).then(() => process.exit(0)),
        (error: unknown) =>
          send({ type: "failed", message: error instanceof Error ? (error.stack ?? error.message) : String(error) }).then(() => process.exit(1)),
      );
    }
  });
}

main();
