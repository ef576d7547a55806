import assert from "node:assert/strict";
import { test } from "node:test";
import { takesRawHeaderArrays } from "../../src/rpc/diverted-call.js";

test("raw header arrays are passed to respond() only on a Node.js that takes them (24.7.0 and later)", () => {
  for (const [version, takes] of [
    ["24.0.0", false],
    ["24.6.9", false],
    ["24.7.0", true],
    ["24.21.0", true],
    ["25.0.0", true],
    ["20.19.5", false],
  ] as const) {
    assert.equal(takesRawHeaderArrays(version), takes, version);
  }
  assert.equal(takesRawHeaderArrays(process.versions.node), true, "the Node.js of npm start, the tests and the image");
});
