/**
 * The Node.js flags the server runs with: `npm start`, the Docker image's CMD and the bin entry's
 * shebang pass these (test/e2e/runtime-flags.test.ts keeps them in step), and so do the benchmarks.
 *
 * --single-threaded-gc: no background GC threads. This server's heap is small (~15 MB) but
 * uploads churn buffers outside it, so V8 marks often; with concurrent and parallel marking the
 * helper threads spent more CPU than the marking itself is worth (measured: 34% of the server's
 * CPU when publishing, and 10-20% less CPU per GB delivered without them). V8 options cannot be
 * set from NODE_OPTIONS or once the process runs (changing GC flags at run time can crash V8).
 *
 * --max-semi-space-size=8 (MiB): V8's young generation grows to at most 16 MiB per isolate (the main
 * thread and each worker thread), on every machine: V8's own default depends on the heap limit it
 * derives from the machine's memory (16 MiB on this project's 24 GiB box, 32 on larger ones). It
 * was 1 MiB (2 MiB young generations) to keep resident pages down while publishing; measured again
 * with the server saturated by cheap clients (issue #15, docs/performance.md, "Small calls with a
 * raw-socket client"), the small young generation cost 3-4 µs per RetrieveVersionInfos and 5-10 %
 * per small CreateVersion and CreateOrUpdateModel in scavenges, for ~5 MiB of resident set when
 * publishing 1 MiB versions (budget + 137-140 MiB against + 130-136, within the goal of + 150).
 */
export const SERVER_NODE_FLAGS: readonly string[] = ["--single-threaded-gc", "--max-semi-space-size=8"];

/**
 * The environment the server runs with where it can (npm start, the Docker image, the bin entry's
 * shebang and the benchmarks): glibc's malloc reads it only at the process's start.
 *
 * MALLOC_ARENA_MAX=2: at most two malloc arenas instead of 8 per core. Each thread (workers, libuv's
 * pool, V8's platform threads) otherwise gets its own 64 MiB arena whose freed pages stay resident:
 * ~20 MiB of the resident set under 4 publishers of 1 MiB versions, ~7–10 MiB of it saved (issue
 * #15). Ignored by other C libraries (musl).
 */
export const SERVER_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: "2" };

/** SERVER_ENV as shell assignments, `NAME=value ...`. */
export function serverEnvAssignments(): string {
  return Object.entries(SERVER_ENV)
    .map(([name, value]) => `${name}=${value}`)
    .join(" ");
}

/** The flags of SERVER_NODE_FLAGS this process was not started with. */
export function missingServerFlags(execArgv: readonly string[] = process.execArgv): string[] {
  return SERVER_NODE_FLAGS.filter((flag) => !execArgv.includes(flag));
}
