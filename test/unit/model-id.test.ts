import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  MAX_MODEL_ID_BYTES,
  decodeModelInfo,
  decodeVersionInfo,
  encodeModelInfo,
  encodeVersionInfo,
  isTempFileName,
  modelIdProblem,
  tempFileName,
  versionDataPath,
  versionInfoPath,
} from "../../src/archive/index.js";
import { compareCodePoints } from "../../src/code-point-order.js";
import { Code, RegistryError } from "../../src/errors/index.js";

describe("model id rule", () => {
  test("accepts every id usable as one file name, as given", () => {
    for (const id of ["a", "my model", "agent:v1", "a+b", "modèle", "a@b", "#", "%", "=", ",", "😀", "x.", "a..b", "-", "\u0085", "\u00a0", "e\u0301"]) {
      assert.equal(modelIdProblem(id), undefined, JSON.stringify(id));
    }
    assert.equal(modelIdProblem("a".repeat(242)), undefined);
    assert.equal(modelIdProblem("€".repeat(80) + "ab"), undefined, "242 bytes in 82 characters");
  });

  test("names the problem of every refused id", () => {
    assert.equal(MAX_MODEL_ID_BYTES, 242);
    const cases: [string, string][] = [
      ["", "it is empty"],
      [".", 'it is "."'],
      ["..", 'it is ".."'],
      [".x", "it starts with '.' (reserved for the registry's own files)"],
      ["a/b", "it contains '/'"],
      ["a\\b", "it contains '\\'"],
      ["\u0000", "it contains the control character U+0000"],
      ["a\rb", "it contains the control character U+000D"],
      ["\u001b[31m", "it contains the control character U+001B"],
      ["\u007f", "it contains the control character U+007F"],
      ["a".repeat(243), "it is 243 bytes of UTF-8, more than 242"],
      ["€".repeat(81), "it is 243 bytes of UTF-8, more than 242"],
    ];
    for (const [id, problem] of cases) {
      assert.equal(modelIdProblem(id), problem, JSON.stringify(id));
    }
  });
});

describe("archive file names of long ids", () => {
  const isInvalidArgument = (pattern: RegExp) => (error: unknown) => {
    assert.ok(error instanceof RegistryError);
    assert.equal(error.code, Code.INVALID_ARGUMENT);
    assert.match(error.message, pattern);
    return true;
  };

  test("a 242-byte id fits every version file up to 999,999; past it, INVALID_ARGUMENT names the sizes", () => {
    const id = "é".repeat(121);
    assert.equal(Buffer.byteLength(versionDataPath("/r", id, 999_999).slice("/r/".length + id.length + 1)), 255);
    assert.throws(
      () => versionDataPath("/r", id, 1_000_000),
      isInvalidArgument(/^model_id is too long to archive version 1000000: its file name would be 256 bytes of UTF-8 \(242 bytes of model id\), more than the 255-byte limit of file names$/),
    );
    assert.throws(() => versionInfoPath("/r", id, 1_000_000), isInvalidArgument(/would be 256 bytes/));
    assert.doesNotThrow(() => versionDataPath("/r", "é".repeat(120), 99_999_999));
  });

  test("temp names are cut to 255 bytes at a character boundary", () => {
    for (const base of ["a".repeat(255), "é".repeat(127) + ".yaml", "😀".repeat(61) + "-v000001.data", `${"x".repeat(232)}😀`]) {
      const name = tempFileName(base);
      assert.ok(Buffer.byteLength(name) <= 255, `${Buffer.byteLength(name)} bytes`);
      assert.ok(isTempFileName(name));
      assert.equal(Buffer.from(name).toString(), name, "no character split");
      assert.ok(base.startsWith(name.slice(1, name.lastIndexOf(".tmp-"))));
    }
    const cut = tempFileName(`${"x".repeat(232)}😀`);
    assert.equal(cut.slice(1, cut.lastIndexOf(".tmp-")), "x".repeat(232), "the emoji (4 bytes) would pass 233 bytes: dropped whole");
    assert.equal(tempFileName("modèle agent:v1.yaml").slice(0, 22), ".modèle agent:v1.yaml.");
  });
});

describe("model ids in the archive's YAML", () => {
  test("every accepted id reads back as written, in model and version infos", () => {
    const ids = ["modèle agent:v1", "a: b", "#x", "- a", "@x", "'q", '"q', "true", "123", "~", "null", " lead", "trail ", "<<", "a\u2028b", "a\u0085b", "\ufeffbom", "a\u0080b", "😀", "{a", "[a"];
    for (const modelId of ids) {
      const model = encodeModelInfo({ modelId, userData: {} });
      assert.equal(decodeModelInfo(model).modelId, modelId, model);
      const version = encodeVersionInfo({
        modelId,
        versionNumber: 1,
        creationTimestamp: 1n,
        archived: true,
        dataHash: "h",
        dataSize: 0,
        userData: {},
      });
      assert.equal(decodeVersionInfo(version).modelId, modelId, version);
    }
  });

  test("plain when yaml.v2 writes it plain, escaped where yaml.v2 escapes", () => {
    assert.equal(encodeModelInfo({ modelId: "modèle agent:v1", userData: {} }), "model_id: modèle agent:v1\nuser_data: {}\n");
    assert.equal(encodeModelInfo({ modelId: "a\u2028b", userData: {} }), 'model_id: "a\\Lb"\nuser_data: {}\n');
    assert.equal(encodeModelInfo({ modelId: "\ufeffbom", userData: {} }), 'model_id: "\\uFEFFbom"\nuser_data: {}\n');
    assert.equal(encodeModelInfo({ modelId: "<<", userData: {} }), 'model_id: "<<"\nuser_data: {}\n');
  });
});

describe("compareCodePoints", () => {
  test("orders like the bytes of UTF-8, where UTF-16 order differs", () => {
    assert.ok(compareCodePoints("\uFF61", "\u{1F600}") < 0);
    assert.ok("\uFF61" > "\u{1F600}", "UTF-16 code units disagree");
    assert.ok(compareCodePoints("\uE000", "\u{10000}") < 0);
    assert.ok(compareCodePoints("\u{10FFFF}", "\uFFFF") > 0);
    assert.equal(compareCodePoints("a😀", "a😀"), 0);
    assert.ok(compareCodePoints("a", "ab") < 0);
    assert.ok(compareCodePoints("Z", "a") < 0);
  });

  test("agrees with Buffer.compare on UTF-8 for random strings", () => {
    const alphabet = ["a", "b", "é", "\u07ff", "\u0800", "\ud7ff", "\ue000", "\uff61", "\uffff", "\u{10000}", "\u{1F600}", "\u{10FFFF}"];
    let seed = 7;
    const next = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const word = (): string => Array.from({ length: next(4) }, () => alphabet[next(alphabet.length)]).join("");
    for (let i = 0; i < 5000; i++) {
      const a = word();
      const b = word();
      assert.equal(Math.sign(compareCodePoints(a, b)), Buffer.compare(Buffer.from(a), Buffer.from(b)), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
    }
  });
});
