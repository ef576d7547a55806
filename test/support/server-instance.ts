import { setTimeout as sleep } from "node:timers/promises";
import type { TestContext } from "node:test";
import { RegistryClient } from "./registry-client.js";
import { type ServerProcess, spawnServer } from "./server-process.js";
import { onCleanup } from "./cleanup.js";

/** A server process and a client of it. */
export interface ServerInstance {
  readonly process: ServerProcess;
  readonly client: RegistryClient;
  readonly address: string;
}

/** The compiled server in its own process, with a client; after the test the client is closed and the process killed (SIGKILL). */
export async function startServerInstance(t: TestContext, env: Record<string, string>): Promise<ServerInstance> {
  const process = await spawnServer(env);
  const address = `127.0.0.1:${process.port}`;
  const client = new RegistryClient(address);
  onCleanup(t, async () => {
    client.close();
    process.child.kill("SIGKILL");
    await process.exited;
  });
  return { process, client, address };
}

/**
 * Resolves once the instance serves registry calls (an instance whose Redis answers slowly listens
 * before its start on Redis is done, failing calls UNAVAILABLE meanwhile); fails after ~10 s.
 */
export async function untilServing(instance: ServerInstance): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await instance.client.retrieveModels();
      return;
    } catch (error) {
      if (attempt >= 100) {
        throw error;
      }
      await sleep(100);
    }
  }
}
