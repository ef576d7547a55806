import type { ArchiveStore } from "../../src/archive/index.js";
import { createSha256 } from "../../src/data/index.js";
import { createLogger } from "../../src/logger.js";
import type { RegistryOptions } from "../../src/registry/registry.js";

/** Registry options for unit tests on `archive`: a 1 MiB cache, 1 KiB reply chunks, no expiration, silent log. */
export async function testRegistryOptions(archive: ArchiveStore): Promise<RegistryOptions> {
  const sha = await createSha256("node-crypto");
  return {
    archive,
    cacheMaxBytes: 1 << 20,
    cacheExpirationMs: 0,
    cachePruneCount: 1,
    chunkSize: 1024,
    hash: async (segments) => sha(segments),
    log: createLogger("silent"),
  };
}
