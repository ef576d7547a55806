/** Clients making one kind of small call in a tight loop, each on its own connection (the lean http2 client). */
import { randomFillSync } from "node:crypto";
import { errorText } from "../support/bench-client.js";
import { sharedNow, sleep } from "../support/clock.js";
import type { MeasuredWindow, SmallCallsResult, SmallCallsTask } from "./generator-protocol.js";
import { Http2UnaryClient } from "./http2-unary-client.js";
import { SMALL_CALL_PATHS, createModelRequest, createVersionRequest, latestInfoRequest } from "./small-requests.js";

const MAX_ERRORS = 100;
const CALL_TIMEOUT_MS = 10_000;

/** The request body of client `client`'s call number `n`. */
function requestMaker(task: SmallCallsTask, client: number): (n: number) => Buffer {
  switch (task.call) {
    case "infos": {
      const body = latestInfoRequest(task.modelId);
      return () => body;
    }
    case "create-version": {
      const body = createVersionRequest(task.modelId, randomFillSync(Buffer.allocUnsafe(task.bodyBytes)));
      return () => body;
    }
    case "create-model":
      return (n) => createModelRequest(`${task.modelId}-${client}`, n);
  }
}

export async function runSmallCallClients(task: SmallCallsTask, window: MeasuredWindow, stop: AbortSignal): Promise<SmallCallsResult> {
  const latenciesMs: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const path = SMALL_CALL_PATHS[task.call];
  const clients = Array.from({ length: task.count }, () => new Http2UnaryClient(task.address));
  const loop = async (index: number): Promise<void> => {
    const client = clients[index] as Http2UnaryClient;
    const request = requestMaker(task, task.firstClient + index);
    for (let n = 1; !stop.aborted && sharedNow() < window.windowEnd && errors < MAX_ERRORS; n++) {
      const startedAt = sharedNow();
      try {
        await client.call(path, request(n), CALL_TIMEOUT_MS);
      } catch (error) {
        errors++;
        firstError ??= errorText(error);
        await sleep(10);
        continue;
      }
      const endedAt = sharedNow();
      if (endedAt >= window.windowStart && endedAt < window.windowEnd) {
        latenciesMs.push(endedAt - startedAt);
      }
    }
  };
  try {
    await Promise.all(clients.map((_, index) => loop(index)));
  } finally {
    for (const client of clients) {
      client.close();
    }
  }
  return { role: "small-calls", latenciesMs, errors, firstError };
}
