/**
 * The Node.js flags the server runs with: `npm start`, the Docker image's CMD and the bin entry's
 * shebang pass these (test/e2e/runtime-flags.test.ts keeps them in step), and so do the benchmarks.
 *
 * --single-threaded-gc: no background GC threads. This server's heap is small (~15 MB) but
 * uploads churn buffers outside it, so V8 marks often; with concurrent and parallel marking the
 * helper threads spent more CPU than the marking itself is worth (measured: 34% of the server's
 * CPU when publishing, and 10-20% less CPU per GB delivered without them). V8 options cannot be
 * set from NODE_OPTIONS or once the process runs (changing GC flags at run time can crash V8).
 */
export const SERVER_NODE_FLAGS: readonly string[] = ["--single-threaded-gc"];

/** The flags of SERVER_NODE_FLAGS this process was not started with. */
export function missingServerFlags(execArgv: readonly string[] = process.execArgv): string[] {
  return SERVER_NODE_FLAGS.filter((flag) => !execArgv.includes(flag));
}
