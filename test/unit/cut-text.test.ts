import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { cutText, wellFormed } from "../../src/cut-text.js";

describe("cutText", () => {
  test("keeps text within the limit, cuts longer text at the limit", () => {
    assert.equal(cutText("abc", 3), "abc");
    assert.equal(cutText("abcd", 3), "abc");
    assert.equal(cutText("", 0), "");
  });

  test("never splits a surrogate pair: the cut moves back before the pair", () => {
    assert.equal(cutText("ab😀c", 3), "ab");
    assert.equal(cutText("ab😀c", 4), "ab😀");
    assert.equal(cutText("a😀😀", 4), "a😀");
    assert.ok(cutText("x".repeat(255) + "😀", 256).isWellFormed());
  });
});

describe("wellFormed", () => {
  test("replaces lone surrogates with U+FFFD and leaves well-formed text as it is", () => {
    assert.equal(wellFormed("a😀b"), "a😀b");
    assert.equal(wellFormed("a\ud83d"), "a\ufffd");
    assert.equal(wellFormed("\ude00z"), "\ufffdz");
  });
});
