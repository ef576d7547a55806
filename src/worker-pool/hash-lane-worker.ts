/**
 * A hash lane thread (hash-lanes.ts): node:crypto SHA-256s of several streams at once, each fed in
 * the order its batches were posted. A node:crypto Hash cannot leave the thread that made it, so a
 * stream stays on one lane from its first batch to its digest.
 */
import { type Hash, createHash } from "node:crypto";
import { parentPort } from "node:worker_threads";
import type { LaneReply, LaneRequest } from "./hash-lane-protocol.js";
import { createSharedMemoryCollector } from "./shared-memory-collector.js";

/** Shared views received keep their memory alive until this heap is collected (see shared-memory-collector.ts). */
const releasedShared = createSharedMemoryCollector();

const port = parentPort;
if (port === null) {
  throw new Error("hash-lane-worker.js runs as a worker thread");
}
const hashes = new Map<number, Hash>();

function hashOf(stream: number): Hash {
  let hash = hashes.get(stream);
  if (hash === undefined) {
    hash = createHash("sha256");
    hashes.set(stream, hash);
  }
  return hash;
}

function handle(request: LaneRequest): LaneReply | undefined {
  switch (request.kind) {
    case "update": {
      const hash = hashOf(request.stream);
      for (const segment of request.segments) {
        hash.update(segment);
      }
      releasedShared(request.segments);
      return { kind: "hashed", stream: request.stream };
    }
    case "digest": {
      const digest = hashOf(request.stream).digest("base64");
      hashes.delete(request.stream);
      return { kind: "digest", stream: request.stream, digest };
    }
    case "abandon":
      hashes.delete(request.stream);
      return undefined;
    case "count":
      return { kind: "count", open: hashes.size };
  }
}

port.on("message", (request: LaneRequest) => {
  let reply: LaneReply | undefined;
  try {
    reply = handle(request);
  } catch (error) {
    if (request.kind === "count") {
      throw error;
    }
    hashes.delete(request.stream);
    reply = request.kind === "abandon" ? undefined : { kind: "failed", stream: request.stream, message: String(error) };
  }
  if (reply !== undefined) {
    port.postMessage(reply);
  }
});
