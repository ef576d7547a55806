/**
 * The production bundle (issue #15, start-up): `npm run build` runs this after tsc. It bundles the
 * compiled entry points (dist/src/…) with their dependencies into dist/bundle/, so a start reads a
 * few files instead of resolving and compiling hundreds of modules one by one.
 *
 *   dist/bundle/main.js            the server (npm start, the Docker image, the bin entry)
 *   dist/bundle/healthcheck.js     the container HEALTHCHECK
 *   dist/bundle/archive-worker.js  the worker threads' task file (worker-pool.ts finds it next to itself)
 *   dist/bundle/hash-lane-worker.js  the hash threads' script (hash-lanes.ts finds it next to itself)
 *   dist/bundle/worker.js          piscina's own worker script (piscina finds it next to itself)
 *   dist/bundle/chunk-*.js, …      code shared by the entries, and what is imported only when needed
 *                                  (the AWS SDK for a bucket, prom-client for metrics)
 *
 * Every file lands in dist/bundle/, two levels below the package root like dist/src/*.js, so the paths
 * the code computes from import.meta.url (package.json, proto/, the worker files) hold in both.
 */
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const ROOT = path.resolve(fileURLToPath(new URL("../..", import.meta.url)));
const OUT_DIR = path.join(ROOT, "dist", "bundle");
const require = createRequire(import.meta.url);

/** CommonJS code in the bundle (grpc-js, pino…) uses require, __filename and __dirname: ESM has none. */
const COMMONJS_GLOBALS = [
  'import { createRequire as __bundleCreateRequire } from "node:module";',
  'import { fileURLToPath as __bundleFileURLToPath } from "node:url";',
  'import { dirname as __bundleDirname } from "node:path";',
  "const require = __bundleCreateRequire(import.meta.url);",
  "const __filename = __bundleFileURLToPath(import.meta.url);",
  "const __dirname = __bundleDirname(__filename);",
].join("\n");

const result = await build({
  absWorkingDir: ROOT,
  entryPoints: {
    main: "dist/src/main.js",
    healthcheck: "dist/src/healthcheck.js",
    "archive-worker": "dist/src/worker-pool/archive-worker.js",
    "hash-lane-worker": "dist/src/worker-pool/hash-lane-worker.js",
    // piscina starts its threads on `resolve(__dirname, "worker.js")`: here, dist/bundle/worker.js.
    worker: path.join(path.dirname(require.resolve("piscina")), "worker.js"),
  },
  outdir: OUT_DIR,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node24",
  banner: { js: COMMONJS_GLOBALS },
  // Left in node_modules: a native addon piscina tries (and does without), and the gRPC reflection
  // service, loaded only when it is on, which reads its own .proto files next to its code.
  external: ["@napi-rs/nice", "@grpc/reflection", "@grpc/proto-loader"],
  sourcemap: "linked",
  metafile: true,
  logLevel: "warning",
});

const sizes = Object.entries(result.metafile.outputs)
  .filter(([file]) => file.endsWith(".js"))
  .map(([, output]) => output.bytes);
process.stdout.write(`bundle: ${sizes.length} files, ${(sizes.reduce((a, b) => a + b, 0) / 1024 / 1024).toFixed(1)} MiB in ${path.relative(ROOT, OUT_DIR)}/\n`);
