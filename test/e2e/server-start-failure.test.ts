import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { type Server, createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, test } from "node:test";
import { createLogger } from "../../src/logger.js";
import { startServer } from "../../src/server.js";
import { DEFAULT_TEST_CONFIG, makeArchiveDir } from "../support/test-server.js";

/** Threads of this process running a worker (Linux names them "WorkerThread"). */
function workerThreads(): number {
  return readdirSync("/proc/self/task").filter((task) => {
    try {
      return readFileSync(`/proc/self/task/${task}/comm`, "utf8").trim() === "WorkerThread";
    } catch {
      return false; // the thread ended while we looked
    }
  }).length;
}

/** Listening TCP servers and open TCP sockets of this process. */
function tcpHandles(): number {
  return process.getActiveResourcesInfo().filter((name) => name === "TCPServerWrap" || name === "TCPSocketWrap").length;
}

/** Polls until `read()` returns `expected` (threads end a little after their worker is terminated). */
async function settlesAt(read: () => number, expected: number): Promise<number> {
  let value = read();
  for (let attempt = 0; attempt < 600 && value !== expected; attempt++) {
    await sleep(50);
    value = read();
  }
  return value;
}

async function occupyPort(): Promise<Server & { port: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  return Object.assign(server, { port: address.port });
}

function closePort(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

const hasThreadNames = (() => {
  try {
    readdirSync("/proc/self/task");
    return true;
  } catch {
    return false;
  }
})();

describe("a failed start releases what it had acquired", { skip: hasThreadNames ? false : "needs /proc (Linux)" }, () => {
  test("metrics port in use: rejected with EADDRINUSE; no worker thread and no listening socket left; the archive opens again", async (t) => {
    const archiveDir = await makeArchiveDir(t);
    const busy = await occupyPort();
    t.after(() => closePort(busy));
    const threadsBefore = workerThreads();
    const handlesBefore = tcpHandles();

    await assert.rejects(
      startServer({ ...DEFAULT_TEST_CONFIG, archiveDir }, createLogger("silent"), {
        host: "127.0.0.1",
        metricsListen: { port: busy.port, host: "127.0.0.1" },
      }),
      { code: "EADDRINUSE" },
    );
    assert.equal(await settlesAt(workerThreads, threadsBefore), threadsBefore, "the worker pool is closed");
    // The failed listen's socket closes on a later turn of the event loop (the rollback no longer
    // waits for a worker thread to end: none is started before the server listens).
    assert.equal(await settlesAt(tcpHandles, handlesBefore), handlesBefore, "nothing listens any more");

    const again = await startServer({ ...DEFAULT_TEST_CONFIG, archiveDir }, createLogger("silent"), { host: "127.0.0.1" });
    t.after(() => again.stop());
    // Its thread starts on the turn after it listens, and takes its name once it runs.
    assert.ok(
      (await settlesAt(workerThreads, threadsBefore + 1)) > threadsBefore,
      "a running server has its worker thread (so the count above can fail)",
    );
    await again.stop();
    assert.equal(await settlesAt(workerThreads, threadsBefore), threadsBefore, "stop() closes the worker pool too");
  });

  test("gRPC port in use: rejected naming the address; the metrics endpoint started before it is closed, and the worker threads", async (t) => {
    const archiveDir = await makeArchiveDir(t);
    const busy = await occupyPort();
    t.after(() => closePort(busy));
    const threadsBefore = workerThreads();
    const handlesBefore = tcpHandles();

    await assert.rejects(
      startServer({ ...DEFAULT_TEST_CONFIG, archiveDir, port: busy.port }, createLogger("silent"), {
        host: "127.0.0.1",
        metricsListen: { port: 0, host: "127.0.0.1" },
      }),
      /No address added out of total 1 resolved/,
    );
    assert.equal(await settlesAt(workerThreads, threadsBefore), threadsBefore, "the worker pool is closed");
    assert.equal(await settlesAt(tcpHandles, handlesBefore), handlesBefore, "the metrics endpoint no longer listens");
  });
});
