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
 *   dist/bundle/yaml-library.js    the `yaml` package, which the archive's codec loads at its first use
 *                                  (archive/yaml-library.ts; the codec finds it next to itself)
 *   dist/bundle/chunk-*.js, …      code shared by the entries, and what is imported only when needed
 *                                  (the AWS SDK for a bucket, prom-client for metrics)
 *
 * Every file lands in dist/bundle/, two levels below the package root like dist/src/*.js, so the paths
 * the code computes from import.meta.url (package.json, proto/, the worker files) hold in both.
 */
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { readFileSync, writeFileSync } from "node:fs";
import { type Metafile, build } from "esbuild";

const ROOT = path.resolve(fileURLToPath(new URL("../..", import.meta.url)));
const OUT_DIR = path.join(ROOT, "dist", "bundle");
const require = createRequire(import.meta.url);

/**
 * CommonJS code in the bundle (grpc-js, pino…) uses require, __filename and __dirname: ESM has none.
 * Taken with process.getBuiltinModule, not `import … from "node:module"`: every import statement of
 * a chunk is one more specifier for the ESM loader to resolve and link at each start.
 */
const COMMONJS_GLOBALS = [
  'const require = process.getBuiltinModule("node:module").createRequire(import.meta.url);',
  'const __filename = process.getBuiltinModule("node:url").fileURLToPath(import.meta.url);',
  'const __dirname = process.getBuiltinModule("node:path").dirname(__filename);',
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
    // Required by archive/yaml-codec.ts as "./yaml-library.js" next to itself: in the bundle, next to its chunk.
    "yaml-library": "dist/src/archive/yaml-library.js",
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

/**
 * esbuild wraps each CommonJS module (grpc-js, pino, piscina, yaml…) in a method that runs at its
 * first require: `"path"(exports, module) { … }`. V8 compiles such a function lazily, at its first
 * call, and Node's compile cache stores a chunk's code right after compiling it, before running
 * it: so every start compiled the body of every CommonJS module again (issue #15, start-up). Written
 * as a parenthesized function expression, `"path": (function(exports, module) { … })`, V8 compiles
 * it with the chunk (its heuristic for functions called at once), so the cache holds it. Same
 * lines, so the source maps still hold; the call is the same (esbuild's __commonJS calls it with no
 * `this`). A build whose output does not have the expected shape fails here, not silently.
 */
const COMMONJS_WRAPPER = /__commonJS\(\{\n {2}("[^"\n]+")\(((?:exports|module|, )*)\) \{\n([\s\S]*?)\n {2}\}\n\}\);/g;

function compileCommonJsModulesEagerly(file: string): void {
  const source = readFileSync(file, "utf8");
  const wrappers = source.split("__commonJS({").length - 1;
  if (wrappers === 0) {
    return;
  }
  let rewritten = 0;
  const eager = source.replace(COMMONJS_WRAPPER, (_, name: string, parameters: string, body: string) => {
    rewritten++;
    return `__commonJS({\n  ${name}: (function(${parameters}) {\n${body}\n  })\n});`;
  });
  if (rewritten !== wrappers) {
    throw new Error(`${file}: ${wrappers} CommonJS wrappers, ${rewritten} of the expected shape (has esbuild's output changed?)`);
  }
  writeFileSync(file, eager);
}

/**
 * A chunk with one character beyond ASCII is decoded at every start into a two-byte string: the
 * whole chunk converted (not only checked), twice the memory, and V8 then scans and hashes two bytes
 * per character (issue #15, start-up, seventh pass). esbuild escapes them in strings, template
 * literals, regular expressions and names (its default `charset: "ascii"`) but keeps the comments it
 * keeps (those on class fields) as written. So a character beyond ASCII on a comment-only line is
 * written as its `\u` escape (the line stays a comment, the lines and so the source maps stay);
 * anywhere else the build fails, naming it.
 */
const BEYOND_ASCII = /\P{ASCII}/u;

/** For each line, whether it holds nothing but comment: a `//` line, a whole block comment, or part of one that spans lines. */
function commentOnlyLines(lines: readonly string[]): boolean[] {
  let inBlock = false;
  return lines.map((line) => {
    if (inBlock) {
      const end = line.indexOf("*/");
      inBlock = end < 0;
      return inBlock || line.slice(end + 2).trim() === "";
    }
    const trimmed = line.trim();
    if (trimmed.startsWith("//")) {
      return true;
    }
    if (!trimmed.startsWith("/*")) {
      return false;
    }
    const end = trimmed.indexOf("*/", 2);
    inBlock = end < 0;
    return inBlock || end === trimmed.length - 2;
  });
}

function keepAscii(file: string): void {
  const source = readFileSync(file, "utf8");
  if (!BEYOND_ASCII.test(source)) {
    return;
  }
  const lines = source.split("\n");
  const comments = commentOnlyLines(lines);
  const problems: string[] = [];
  const ascii = lines.map((line, index) => {
    if (!BEYOND_ASCII.test(line)) {
      return line;
    }
    if (comments[index] !== true) {
      problems.push(`${path.relative(ROOT, file)}:${index + 1}: ${line.trim().slice(0, 120)}`);
      return line;
    }
    return line.replace(/\P{ASCII}/gu, (character) =>
      Array.from({ length: character.length }, (_, unit) => `\\u${character.charCodeAt(unit).toString(16).padStart(4, "0")}`).join(""),
    );
  });
  if (problems.length > 0) {
    throw new Error(`bundle: characters beyond ASCII outside a comment line (write them as escapes in the source):\n  ${problems.join("\n  ")}`);
  }
  writeFileSync(file, ascii.join("\n"));
}

for (const file of Object.keys(result.metafile.outputs)) {
  if (file.endsWith(".js")) {
    compileCommonJsModulesEagerly(path.join(ROOT, file));
    keepAscii(path.join(ROOT, file));
  }
}

/**
 * What a start must not load (issue #15, start-up, seventh pass): each was read, compiled and run at
 * every start for nothing the first call needs. The start's files are the main entry, what it
 * imports dynamically (the server's chunk, imported at once) and everything those import statically.
 * A change that brings one back fails the build here, with what brought it.
 */
const NOT_AT_START = [
  // Its WebAssembly in base64, ~270 KB of JavaScript; the default SHA-256 is node:crypto's (data/sha256.ts).
  { input: "node_modules/hash-wasm/", why: "hash-wasm is imported when the hash-wasm SHA-256 is asked for (data/sha256.ts)" },
  // ~280 KB; the codec requires dist/bundle/yaml-library.js at its first use (archive/yaml-codec.ts).
  { input: "node_modules/yaml/", why: "the yaml package is loaded by archive/yaml-codec.ts at its first use, from yaml-library.js" },
] as const;
/** Built-ins a start must not import as ES modules: for each, the ESM loader builds a facade that reads every export, lazy ones included. */
const BUILTINS_NOT_AT_START: Readonly<Record<string, string>> = {
  // The facade's lazy exports load parseArgs, diff (with the assertion diff), setTraceSigInt…
  "node:util": "node:util's ESM facade loads parseArgs, diff, setTraceSigInt… (use what you need otherwise)",
  // ~30 built-in modules (heap snapshots, serdes, the profiler) for setFlagsFromString at the first GC.
  "node:v8": "node:v8 is taken with process.getBuiltinModule when the GC hook is made (expose-gc.ts)",
  "node:vm": "node:vm is taken with process.getBuiltinModule when the GC hook is made (expose-gc.ts)",
};

function checkStartGraph(metafile: Metafile): void {
  const outputs = metafile.outputs;
  const main = Object.keys(outputs).find((file) => outputs[file]?.entryPoint === "dist/src/main.js");
  if (main === undefined) {
    throw new Error("bundle: no output for the entry dist/src/main.js");
  }
  const reached = new Set<string>([main]);
  const pending = [main];
  const problems: string[] = [];
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    for (const imported of outputs[file]?.imports ?? []) {
      if (imported.external === true) {
        const why = BUILTINS_NOT_AT_START[imported.path];
        if (why !== undefined && imported.kind === "import-statement") {
          problems.push(`${file} imports ${imported.path}: ${why}`);
        }
        continue;
      }
      const followed = imported.kind === "import-statement" || (file === main && imported.kind === "dynamic-import");
      if (followed && !reached.has(imported.path)) {
        reached.add(imported.path);
        pending.push(imported.path);
      }
    }
  }
  if (reached.size < 3) {
    throw new Error(`bundle: the start reaches only ${[...reached].join(", ")}: has main.ts stopped importing the server at once?`);
  }
  for (const file of reached) {
    for (const input of Object.keys(outputs[file]?.inputs ?? {})) {
      for (const rule of NOT_AT_START) {
        if (input.startsWith(rule.input)) {
          problems.push(`${file} (loaded at every start) holds ${input}: ${rule.why}`);
        }
      }
    }
  }
  if (problems.length > 0) {
    throw new Error(`bundle: the start loads what it must not (docs/performance.md, "Start-up, seventh pass"):\n  ${[...new Set(problems)].join("\n  ")}`);
  }
}

checkStartGraph(result.metafile);

const sizes = Object.entries(result.metafile.outputs)
  .filter(([file]) => file.endsWith(".js"))
  .map(([, output]) => output.bytes);
process.stdout.write(`bundle: ${sizes.length} files, ${(sizes.reduce((a, b) => a + b, 0) / 1024 / 1024).toFixed(1)} MiB in ${path.relative(ROOT, OUT_DIR)}/\n`);
