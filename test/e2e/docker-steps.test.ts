import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { after, test } from "node:test";
import { RegistryClient } from "../support/registry-client.js";
import { killAllServers, spawnServer } from "../support/server-process.js";
import { onCleanup } from "../support/cleanup.js";

after(killAllServers);

const run = promisify(execFile);
const REPO = path.resolve(import.meta.dirname, "../../..");

/** npm as the test run was started with (npm test sets npm_execpath), else the one on PATH. */
function npmCommand(args: string[]): [string, string[]] {
  const execPath = process.env.npm_execpath;
  return execPath !== undefined && execPath.endsWith(".js") ? [process.execPath, [execPath, ...args]] : ["npm", args];
}

test("the Dockerfile's runtime steps work in a clean directory: npm ci --omit=dev, start, health check, stop", async (t) => {
  const dockerfile = await readFile(path.join(REPO, "Dockerfile"), "utf8");
  for (const step of [
    "RUN npm ci\n",
    "RUN npm run build\n",
    "RUN npm ci --omit=dev",
    "COPY --from=build /app/dist/bundle ./dist/bundle",
    "COPY proto ./proto",
    'HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 CMD ["node", "dist/bundle/healthcheck.js"]',
    'CMD ["node", "--single-threaded-gc", "--max-semi-space-size=8", "dist/bundle/main.js"]',
    "MALLOC_ARENA_MAX=2\n",
    "USER node",
    "VOLUME /data",
    "EXPOSE 9000",
    "COGMENT_MODEL_REGISTRY_ARCHIVE_DIR=/data",
  ]) {
    assert.ok(dockerfile.includes(step), `Dockerfile has: ${step}`);
  }

  // The runtime stage, without Docker: the package files, proto/ and the built output only.
  const app = await mkdtemp(path.join(tmpdir(), "mr-image-"));
  onCleanup(t, () => rm(app, { recursive: true, force: true }));
  for (const entry of ["package.json", "package-lock.json", "proto", "dist/bundle"]) {
    await cp(path.join(REPO, entry), path.join(app, entry), { recursive: true });
  }
  // Offline: the packages come from the npm cache that `npm ci` just filled; tests make no network calls.
  const [command, args] = npmCommand(["ci", "--omit=dev", "--offline", "--no-audit", "--no-fund", "--loglevel=error"]);
  await run(command, args, { cwd: app, env: { ...process.env, NODE_ENV: "production" } });
  await assert.rejects(stat(path.join(app, "node_modules", "typescript")), { code: "ENOENT" }, "no dev dependency in the image");
  assert.ok((await stat(path.join(app, "node_modules", "@grpc", "grpc-js"))).isDirectory());

  const archiveDir = path.join(app, "data");
  const server = await spawnServer({ COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir }, 30_000, path.join(app, "dist/bundle/main.js"));
  try {
    const health = await run(process.execPath, [path.join(app, "dist/bundle/healthcheck.js")], {
      env: { PATH: process.env.PATH ?? "", COGMENT_MODEL_REGISTRY_PORT: String(server.port) },
    });
    assert.equal(health.stdout, "SERVING\n");
    const client = new RegistryClient(`127.0.0.1:${server.port}`);
    try {
      await client.createModel("image");
      const info = await client.publish("image", Buffer.from("weights"), { archived: true });
      assert.equal(info.version_number, 1);
    } finally {
      client.close();
    }
  } finally {
    server.child.kill("SIGTERM");
  }
  assert.equal(await server.exited, 0);
  await assert.rejects(
    run(process.execPath, [path.join(app, "dist/bundle/healthcheck.js")], {
      env: { PATH: process.env.PATH ?? "", COGMENT_MODEL_REGISTRY_PORT: String(server.port) },
    }),
    (error: { code: number; stderr: string }) => error.code === 1 && error.stderr.startsWith("unhealthy: "),
  );
});
