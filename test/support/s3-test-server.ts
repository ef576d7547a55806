/*
 * Starts the S3-protocol test server (see s3rver-patches.ts) as its own process group on a free
 * loopback port, with its data in a fresh temp directory; stops it by process group, also when a test
 * fails (killAllS3TestServers in an `after` hook, and at process exit).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { S3Client } from "@aws-sdk/client-s3";
import { liveProcessGroups, signalGroup } from "./process-groups.js";

const MAIN = fileURLToPath(new URL("./s3-test-server-main.js", import.meta.url));
/** The account s3rver accepts. */
export const S3_TEST_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } as const;
export const S3_TEST_REGION = "us-east-1";

const { live, killAll } = liveProcessGroups();
const killGroup = (child: ChildProcess): void => signalGroup(child, "SIGKILL");

/** Kills every test S3 server still running. */
export function killAllS3TestServers(): void {
  killAll();
}

export interface S3TestServer {
  readonly endpoint: string;
  readonly port: number;
  /** Its process id (benchmarks read its CPU time). */
  readonly pid: number;
  /** Where s3rver keeps its buckets (its own format, not an archive directory). */
  readonly directory: string;
  /** A client of the official SDK for this server (path-style, test credentials). */
  client(options?: { maxAttempts?: number }): S3Client;
  /** The AWS_* variables that point the registry (or any SDK client) at this server. */
  awsEnv(): Record<string, string>;
  /** Kills the server and removes its data. */
  close(): Promise<void>;
}

export async function startS3TestServer(buckets: readonly string[], timeoutMs = 30_000): Promise<S3TestServer> {
  const directory = await mkdtemp(path.join(tmpdir(), "mr-s3-"));
  const child = spawn(process.execPath, ["--openssl-legacy-provider", MAIN, directory, ...buckets], {
    env: { PATH: process.env.PATH ?? "" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  live.add(child);
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  let stderr = "";
  child.stderr?.on("data", (data: Buffer) => (stderr += data.toString()));
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`S3 test server did not start in ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
        try {
          const entry = JSON.parse(line) as { s3TestServer?: string; port?: number };
          if (entry.s3TestServer === "listening" && typeof entry.port === "number") {
            clearTimeout(timer);
            resolve(entry.port);
          }
        } catch {
          // not our line
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`S3 test server exited with ${code}; stderr: ${stderr}`));
      });
    });
  } catch (error) {
    killGroup(child);
    live.delete(child);
    await closed; // it may still write into the directory until then
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    port,
    pid: child.pid as number,
    directory,
    client: (options = {}) =>
      new S3Client({
        endpoint,
        region: S3_TEST_REGION,
        forcePathStyle: true,
        credentials: S3_TEST_CREDENTIALS,
        maxAttempts: options.maxAttempts ?? 3,
      }),
    awsEnv: () => ({
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_REGION: S3_TEST_REGION,
      AWS_ACCESS_KEY_ID: S3_TEST_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3_TEST_CREDENTIALS.secretAccessKey,
    }),
    close: async () => {
      killGroup(child);
      live.delete(child);
      await closed; // it may still write into the directory until then
      await rm(directory, { recursive: true, force: true });
    },
  };
}
