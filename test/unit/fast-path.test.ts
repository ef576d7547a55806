import assert from "node:assert/strict";
import type { ServerHttp2Stream } from "node:http2";
import { describe, test } from "node:test";
import { fastPath } from "../../src/rpc/fast-path.js";

const CREATE_VERSION = "/cogmentAPI.ModelRegistrySP/CreateVersion";
const RETRIEVE_VERSION_INFOS = "/cogmentAPI.ModelRegistrySP/RetrieveVersionInfos";
const VERSION_UPDATE = "/cogmentAPI.ModelRegistrySP/VersionUpdate";

describe("fastPath: which calls it takes", () => {
  const plain = { ":path": CREATE_VERSION, "content-type": "application/grpc" };
  const served: [string, string | undefined][] = [];
  const routes = new Map([
    [CREATE_VERSION, (_stream: ServerHttp2Stream, timeout: string | undefined) => void served.push([CREATE_VERSION, timeout])],
    [RETRIEVE_VERSION_INFOS, (_stream: ServerHttp2Stream, timeout: string | undefined) => void served.push([RETRIEVE_VERSION_INFOS, timeout])],
  ]);

  test("a plain call of a routed method, identity or application/grpc+proto included", () => {
    const streams = fastPath(routes);
    assert.equal(streams.takes(plain), true);
    assert.equal(streams.takes({ ...plain, "grpc-encoding": "identity", "content-type": "application/grpc+proto" }), true);
    assert.equal(streams.takes({ ...plain, "grpc-timeout": "10S" }), true);
    assert.equal(streams.takes({ ...plain, ":path": RETRIEVE_VERSION_INFOS }), true);
  });

  test("not a method without a route, several deadlines, a compression, another content type, or once stopped", () => {
    const streams = fastPath(routes);
    for (const headers of [
      { ...plain, ":path": VERSION_UPDATE },
      { ...plain, ":path": undefined },
      { ...plain, "grpc-timeout": "10S, 20S" },
      { ...plain, "grpc-encoding": "gzip" },
      { ...plain, "content-type": "application/grpc+json" },
      { ...plain, "content-type": undefined },
    ]) {
      assert.equal(streams.takes(headers), false, JSON.stringify(headers));
    }
    streams.stopTaking();
    assert.equal(streams.takes(plain), false);
    assert.equal(streams.served(CREATE_VERSION), 0);
  });

  test("serve() hands the stream and its grpc-timeout to the method's route and counts it per method", () => {
    served.length = 0;
    const streams = fastPath(routes);
    const stream = {} as ServerHttp2Stream;
    streams.serve(stream, { ...plain, ":path": RETRIEVE_VERSION_INFOS, "grpc-timeout": "5m" });
    streams.serve(stream, plain);
    streams.serve(stream, { ...plain, ":path": RETRIEVE_VERSION_INFOS });
    assert.deepEqual(served, [
      [RETRIEVE_VERSION_INFOS, "5m"],
      [CREATE_VERSION, undefined],
      [RETRIEVE_VERSION_INFOS, undefined],
    ]);
    assert.equal(streams.served(RETRIEVE_VERSION_INFOS), 2);
    assert.equal(streams.served(CREATE_VERSION), 1);
    assert.equal(streams.served(VERSION_UPDATE), 0);
    assert.throws(() => streams.serve(stream, { ...plain, ":path": VERSION_UPDATE }), {
      message: `no route below grpc-js for ${VERSION_UPDATE}`,
    });
  });
});
