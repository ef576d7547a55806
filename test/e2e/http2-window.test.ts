import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { startTestServer } from "../support/test-server.js";

// state.localWindowSize is what remains of the window: a small call uses a few bytes of it.
describe("HTTP/2 receive window", () => {
  test("client sessions get the configured connection window", async (t) => {
    const window = 16 * 1024 * 1024;
    const server = await startTestServer({ http2WindowBytes: window });
    t.after(() => server.close());
    await server.client.createModel("window");
    const windows = server.server.sessionWindows();
    assert.equal(windows.length, 1);
    assert.ok((windows[0] ?? 0) > window - 1024 && (windows[0] ?? 0) <= window, `window ${windows[0]}`);
  });

  test("0 keeps Node's default 64 KiB window", async (t) => {
    const server = await startTestServer({ http2WindowBytes: 0 });
    t.after(() => server.close());
    await server.client.createModel("window");
    const windows = server.server.sessionWindows();
    assert.equal(windows.length, 1);
    assert.ok((windows[0] ?? 0) > 65535 - 1024 && (windows[0] ?? 0) <= 65535, `window ${windows[0]}`);
  });
});
