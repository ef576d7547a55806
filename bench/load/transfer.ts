/**
 * The window scenario's client: uploads one transient version, then downloads
 * it, timing each, through whatever address it is given (the delay proxy).
 *
 * Upload speed over a link with a round trip is capped by the SERVER's HTTP/2
 * receive window (COGMENT_MODEL_REGISTRY_HTTP2_WINDOW_SIZE). Download speed is
 * capped by the CLIENT's receive window, which the server does not control:
 * grpc-js clients keep Node's 64 KiB default unless created with the channel
 * option "grpc-node.flow_control_window", so the main download uses a client
 * with an 8 MiB window, and an optional second one shows the default.
 */
import { createHash, randomFillSync } from "node:crypto";
import { type RegistryClient, createBenchClient, fetchVersionData } from "../support/bench-client.js";
import { sharedNow } from "../support/clock.js";
import type { TransferResult, TransferTask, TransferTiming } from "./generator-protocol.js";

export const CLIENT_WINDOW_BYTES = 8 * 1024 * 1024;
const CALL_TIMEOUT_MS = 120_000;

export async function runTransfer(task: TransferTask, stop: AbortSignal): Promise<TransferResult> {
  const data = randomFillSync(Buffer.allocUnsafe(task.versionBytes));
  const expectedHash = createHash("sha256").update(data).digest("base64");
  const uploader = createBenchClient(task.address);
  let uploadMs: number;
  let versionNumber: number;
  try {
    await warmUp(uploader);
    const startedAt = sharedNow();
    const info = await uploader.publish(task.modelId, data, { chunkBytes: task.chunkBytes });
    uploadMs = sharedNow() - startedAt;
    versionNumber = info.version_number;
  } finally {
    uploader.close();
  }
  const download = await timedDownload(task, versionNumber, expectedHash, CLIENT_WINDOW_BYTES, stop);
  const downloadDefaultWindow = task.downloadWithDefaultWindow
    ? await timedDownload(task, versionNumber, expectedHash, 0, stop)
    : undefined;
  return { role: "transfer", uploadMs, download, downloadDefaultWindow };
}

async function timedDownload(
  task: TransferTask,
  versionNumber: number,
  expectedHash: string,
  windowBytes: number,
  stop: AbortSignal,
): Promise<TransferTiming> {
  const client = createBenchClient(task.address, { windowBytes });
  const onAbort = (): void => client.close();
  stop.addEventListener("abort", onAbort, { once: true });
  try {
    await warmUp(client);
    const startedAt = sharedNow();
    const fetched = await fetchVersionData(client, task.modelId, versionNumber, undefined, sharedNow() + CALL_TIMEOUT_MS);
    return { ms: fetched.lastByteAt - startedAt, hashOk: fetched.hashBase64 === expectedHash && fetched.bytes === task.versionBytes };
  } finally {
    stop.removeEventListener("abort", onAbort);
    client.close();
  }
}

/** One small call first, so the timed call does not include connecting and the HTTP/2 handshake. */
async function warmUp(client: RegistryClient): Promise<void> {
  await client.version();
}
