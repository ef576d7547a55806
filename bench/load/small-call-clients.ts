/** Clients making one kind of small call in a tight loop, each on its own connection (raw or node:http2 client). */
import { randomFillSync } from "node:crypto";
import { runCallLoops } from "./call-loops.js";
import type { MeasuredWindow, SmallCallsResult, SmallCallsTask } from "./generator-protocol.js";
import { Http2UnaryClient } from "./http2-unary-client.js";
import { RawHttp2Client } from "./raw-http2-client.js";
import { SMALL_CALL_PATHS, createModelRequest, createVersionRequest, latestInfoRequest } from "./small-requests.js";

const CALL_TIMEOUT_MS = 10_000;
/** The raw client's receive window: replies are small, so its WINDOW_UPDATEs are rare. */
const RAW_CLIENT_WINDOW_BYTES = 1024 * 1024;

interface UnaryClient {
  unary(path: string, request: Buffer, timeoutMs: number): Promise<number>;
  close(): void;
}

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
  const path = SMALL_CALL_PATHS[task.call];
  const clients = Array.from(
    { length: task.count },
    (): UnaryClient => (task.client === "raw" ? new RawHttp2Client(task.address, RAW_CLIENT_WINDOW_BYTES) : new Http2UnaryClient(task.address)),
  );
  const requests = clients.map((_, index) => requestMaker(task, task.firstClient + index));
  const result = await runCallLoops(
    clients,
    (client, index, n) => client.unary(path, (requests[index] as (n: number) => Buffer)(n), CALL_TIMEOUT_MS),
    window,
    stop,
  );
  return { role: "small-calls", ...result };
}
