import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { EMPTY_USER_DATA } from "../../src/registry/index.js";
import { estimateEncodedSize, limitReplySize } from "../../src/rpc/reply-size.js";

describe("limitReplySize", () => {
  const item = (modelId: string, blob = ""): { modelId: string; userData: Readonly<Record<string, string>> } => ({
    modelId,
    userData: blob === "" ? EMPTY_USER_DATA : { blob },
  });

  test("no item or one item is returned as it is, however large", () => {
    const none: ReturnType<typeof item>[] = [];
    assert.equal(limitReplySize(none, 10), none);
    const one = [item("huge", "x".repeat(1000))];
    assert.equal(limitReplySize(one, 10), one);
  });

  test("items past the limit are left for the next page, the first one always kept", () => {
    const items = [item("a", "x".repeat(100)), item("b", "x".repeat(100)), item("c", "x".repeat(100))];
    const each = estimateEncodedSize(items[0] as ReturnType<typeof item>);
    assert.equal(each, 64 + 1 + 12 + 4 + 100);
    assert.deepEqual(limitReplySize(items, 2 * each).map((i) => i.modelId), ["a", "b"]);
    assert.deepEqual(limitReplySize(items, 2 * each - 1).map((i) => i.modelId), ["a"]);
    assert.deepEqual(limitReplySize(items, 1).map((i) => i.modelId), ["a"]);
    assert.equal(limitReplySize(items, 3 * each), items);
  });
});
