import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ReplyError } from "ioredis";
import { Code, RegistryError } from "../../src/errors/index.js";
import { toRegistryError } from "../../src/redis/redis-errors.js";

function reply(message: string): Error {
  return new (ReplyError as unknown as new (message: string) => Error)(message);
}

describe("toRegistryError: what a Redis reply becomes", () => {
  test("a Redis that is there but cannot serve now is UNAVAILABLE naming it, the reply kept", () => {
    for (const message of [
      "LOADING Redis is loading the dataset in memory",
      "CLUSTERDOWN The cluster is down",
      "TRYAGAIN Multiple keys request during rehashing of slot",
      "MOVED 3999 127.0.0.1:6381",
      "ASK 3999 127.0.0.1:6381",
      "NOREPLICAS Not enough good replicas to write.",
      "ERR max number of clients reached",
      "ERR Error running script (call to f_x): @user_script:3: Script attempted to access a non local key in a cluster node",
    ]) {
      const error = toRegistryError("127.0.0.1:6380", reply(message));
      assert.equal(error.code, Code.UNAVAILABLE, message);
      assert.equal(error.message, `Redis at 127.0.0.1:6380 is unreachable: ${message}`);
    }
  });

  test("other refusals are INTERNAL, out of memory RESOURCE_EXHAUSTED, our scripts' errors their own status", () => {
    assert.equal(toRegistryError("r:1", reply("ERR unknown command 'FOO'")).code, Code.INTERNAL);
    assert.equal(toRegistryError("r:1", reply("ERR unknown command 'FOO'")).message, "Redis at r:1 refused a command: ERR unknown command 'FOO'");
    assert.equal(toRegistryError("r:1", reply("OOM command not allowed when used memory > 'maxmemory'.")).code, Code.RESOURCE_EXHAUSTED);
    const notFound = toRegistryError("r:1", reply("CMR_NOT_FOUND the model does not exist"));
    assert.equal(notFound.code, Code.NOT_FOUND);
    assert.equal(notFound.message, "the model does not exist");
    const kept = new RegistryError(Code.ABORTED, "as it was");
    assert.equal(toRegistryError("r:1", kept), kept);
  });
});
