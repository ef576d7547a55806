import type { TestContext } from "node:test";
import { RegistryClient } from "./registry-client.js";
import { type ServerProcess, spawnServer } from "./server-process.js";

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
  t.after(async () => {
    client.close();
    process.child.kill("SIGKILL");
    await process.exited;
  });
  return { process, client, address };
}
