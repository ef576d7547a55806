/**
 * Entry of a load generator process (forked by generators.ts). Runs one task
 * from generator-protocol.ts and reports its result over IPC.
 *
 * Load runs here, never in the orchestrator's thread, so that the thread
 * timing the window and reading /proc is idle, and so each generator's CPU
 * time can be read from /proc/<pid>/stat and compared with the server's.
 *
 * Every task stops by itself: loops end at the window's end, calls still in
 * flight get DRAIN_GRACE_MS, and a failsafe timer exits the process after that.
 */
import { runArchivedReads } from "./archived-reads.js";
import { sendToParent } from "../support/bench-child.js";
import { sharedNow } from "../support/clock.js";
import { startDelayProxy } from "./delay-proxy.js";
import {
  type ChildMessage,
  DRAIN_GRACE_MS,
  type GeneratorResult,
  type GeneratorTask,
  type MeasuredWindow,
  type ParentMessage,
} from "./generator-protocol.js";
import { runMetadataClients } from "./metadata-clients.js";
import { runPublisher } from "./publisher.js";
import { runSmallCallClients } from "./small-call-clients.js";
import { runReaders } from "./readers.js";
import { startTcpSink, startTcpSource } from "./tcp-ceiling.js";
import { runTransfer } from "./transfer.js";

const FAILSAFE_MARGIN_MS = 10_000;
/** Tasks without a window (transfer, ceiling, proxy) end by this long after start at the latest. */
const UNWINDOWED_LIMIT_MS = 180_000;

const send: (message: ChildMessage) => Promise<void> = sendToParent;

async function finish(message: ChildMessage, code: number): Promise<never> {
  await send(message);
  process.exit(code);
}

interface Prepared {
  readonly port: number | undefined;
  run(window: MeasuredWindow, stop: AbortSignal): Promise<GeneratorResult>;
}

async function prepare(task: GeneratorTask): Promise<Prepared> {
  switch (task.role) {
    case "publisher":
      return { port: undefined, run: (window, stop) => runPublisher(task, window, stop) };
    case "readers":
      return { port: undefined, run: (window, stop) => runReaders(task, window, stop) };
    case "metadata":
      return { port: undefined, run: (window, stop) => runMetadataClients(task, window, stop) };
    case "small-calls":
      return { port: undefined, run: (window, stop) => runSmallCallClients(task, window, stop) };
    case "archived-read":
      return { port: undefined, run: (_window, stop) => runArchivedReads(task, stop) };
    case "transfer":
      return { port: undefined, run: (_window, stop) => runTransfer(task, stop) };
    case "tcp-source": {
      const source = await startTcpSource(task);
      return { port: source.port, run: (_window, stop) => source.run(stop) };
    }
    case "tcp-sink": {
      const sink = await startTcpSink(task);
      return {
        port: undefined,
        run: (_window, stop) => {
          stop.addEventListener("abort", () => sink.close(), { once: true });
          return sink.done;
        },
      };
    }
    case "proxy": {
      const proxy = await startDelayProxy({ targetPort: task.targetPort, delayMs: task.delayMs });
      return {
        port: proxy.port,
        run: async (_window, stop) => {
          await new Promise<void>((resolve) => stop.addEventListener("abort", () => resolve(), { once: true }));
          const bytesForwarded = proxy.bytesForwarded();
          await proxy.close();
          return { role: "proxy", bytesForwarded };
        },
      };
    }
  }
}

function main(): void {
  process.on("disconnect", () => process.exit(1));
  let prepared: Prepared | undefined;
  let started = false;
  const controller = new AbortController();
  process.on("message", (message: ParentMessage) => {
    if (message.type === "task") {
      prepare(message.task).then(
        (ready) => {
          prepared = ready;
          void send({ type: "ready", port: ready.port });
        },
        (error: unknown) => void finish({ type: "failed", message: `prepare: ${String(error)}` }, 1),
      );
    } else if (message.type === "start" && prepared !== undefined && !started) {
      started = true;
      const { window } = message;
      const windowed = Number.isFinite(window.windowEnd);
      const hardStopAt = windowed ? window.windowEnd + DRAIN_GRACE_MS : sharedNow() + UNWINDOWED_LIMIT_MS;
      setTimeout(() => controller.abort(), Math.max(0, hardStopAt - sharedNow()));
      setTimeout(
        () => void finish({ type: "failed", message: "failsafe: the task did not end in time" }, 3),
        Math.max(0, hardStopAt + FAILSAFE_MARGIN_MS - sharedNow()),
      );
      prepared.run(window, controller.signal).then(
        (result) => finish({ type: "result", result }, 0),
        (error: unknown) => finish({ type: "failed", message: error instanceof Error ? (error.stack ?? error.message) : String(error) }, 1),
      );
    } else if (message.type === "stop") {
      controller.abort();
    }
  });
}

main();
