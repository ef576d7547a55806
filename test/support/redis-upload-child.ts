/*
 * A writer that dies mid-upload (test/e2e/redis-store.test.ts): streams the first half of a version's
 * chunks into Redis through RedisRegistryStore, prints "half" once they are acknowledged, then waits
 * to be killed with SIGKILL. Arguments: Redis URL, model id, data size, chunk size.
 */
import { RedisRegistryStore } from "../../src/redis/index.js";

const [url, modelId, dataSizeText, chunkBytesText] = process.argv.slice(2);
const dataSize = Number(dataSizeText);
const chunkBytes = Number(chunkBytesText);
const store = RedisRegistryStore.create(url ?? "", { expirationMs: 0, chunkBytes, maxChunksInFlight: 1 });
await store.connection.waitUntilHealthy(30_000);
const writer = store.beginVersionData(modelId ?? "", dataSize);
const half = Math.floor(dataSize / chunkBytes / 2) * chunkBytes;
await writer.append(Buffer.alloc(half, 7));
// One more byte makes append wait for the previous chunks' acknowledgements (maxChunksInFlight 1).
await writer.append(Buffer.alloc(1, 7));
process.stdout.write("half\n");
setInterval(() => undefined, 60_000);
