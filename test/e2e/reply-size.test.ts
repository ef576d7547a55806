import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { RegistryClient } from "../support/registry-client.js";
import { startTestServer } from "../support/test-server.js";

const STOCK_LIMIT = 4 * 1024 * 1024;

describe("listing replies stay under the 4 MiB stock clients accept", () => {
  test("RetrieveModels and RetrieveVersionInfos page large user_data instead of failing", async (t) => {
    const server = await startTestServer();
    t.after(() => server.close());
    // A client with the stock 4 MiB receive limit, as most users have.
    const stock = new RegistryClient(server.address, { "grpc.max_receive_message_length": STOCK_LIMIT });
    t.after(() => stock.close());
    const big = { blob: "x".repeat(60 * 1024) };
    for (let i = 0; i < 100; i++) {
      await server.client.createModel(`wide-${String(i).padStart(3, "0")}`, big);
    }
    const seen: string[] = [];
    let handle = "";
    let pages = 0;
    for (;;) {
      const page = await stock.retrieveModels({ model_handle: handle });
      if (page.model_infos.length === 0) break;
      pages++;
      seen.push(...page.model_infos.map((m) => m.model_id));
      handle = page.next_model_handle;
    }
    assert.equal(seen.length, 100);
    assert.deepEqual(seen, [...seen].sort());
    assert.equal(new Set(seen).size, 100);
    assert.ok(pages >= 2, `${pages} pages`);

    for (let i = 0; i < 100; i++) {
      await server.client.publish("wide-000", Buffer.from([i]), { user_data: big });
    }
    const numbers: number[] = [];
    handle = "";
    for (;;) {
      const page = await stock.retrieveVersionInfos({ model_id: "wide-000", version_handle: handle });
      if (page.version_infos.length === 0) break;
      numbers.push(...page.version_infos.map((v) => v.version_number));
      handle = page.next_version_handle;
    }
    assert.deepEqual(numbers, Array.from({ length: 100 }, (_, i) => i + 1));
  });
});
