import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { decodeModelInfo, decodeVersionInfo, encodeModelInfo, encodeVersionInfo } from "../../src/archive/yaml-codec.js";
import { ORIGINAL_ARCHIVE } from "../support/fixtures.js";

const fixtureRoot = ORIGINAL_ARCHIVE;

const baseVersion = {
  modelId: "policy_net",
  versionNumber: 1,
  creationTimestamp: 1633119005107454620n,
  archived: true,
  dataHash: "jY0g3VkUK62ILPr2JuaW5g7uQi0EcJVZJu8IYp3yfhI=",
  dataSize: 14,
  userData: { step: "1000" },
};

describe("archive YAML codec", () => {
  test("re-encoding every fixture file gives the same bytes", async () => {
    const files: string[] = [];
    for (const dir of await fs.readdir(fixtureRoot)) {
      for (const name of await fs.readdir(path.join(fixtureRoot, dir))) {
        if (name.endsWith(".yaml")) {
          files.push(path.join(fixtureRoot, dir, name));
        }
      }
    }
    assert.equal(files.length, 9);
    for (const file of files) {
      const text = await fs.readFile(file, "utf8");
      const encoded = /-v\d+\.yaml$/.test(file)
        ? encodeVersionInfo(decodeVersionInfo(text))
        : encodeModelInfo(decodeModelInfo(text));
      assert.equal(encoded, text, file);
    }
  });

  test("decodes the fixture's version and model info exactly", async () => {
    const versionText = await fs.readFile(path.join(fixtureRoot, "policy_net/policy_net-v000001.yaml"), "utf8");
    assert.deepEqual(decodeVersionInfo(versionText), baseVersion);
    const modelText = await fs.readFile(path.join(fixtureRoot, "policy_net/policy_net.yaml"), "utf8");
    assert.deepEqual(decodeModelInfo(modelText), {
      modelId: "policy_net",
      userData: { framework: "torch", type: "dqn" },
    });
    assert.deepEqual(decodeModelInfo("model_id: value-net_2\nuser_data: {}\n"), {
      modelId: "value-net_2",
      userData: {},
    });
  });

  test("encodes a version exactly like the original server", () => {
    assert.equal(
      encodeVersionInfo(baseVersion),
      "model_id: policy_net\n" +
        "version_number: 1\n" +
        "creation_timestamp: 2021-10-01T20:10:05.10745462Z\n" +
        "data_hash: jY0g3VkUK62ILPr2JuaW5g7uQi0EcJVZJu8IYp3yfhI=\n" +
        "data_size: 14\n" +
        "user_data:\n" +
        '  step: "1000"\n',
    );
    assert.equal(
      encodeVersionInfo({ ...baseVersion, creationTimestamp: 1633120000000000000n, dataSize: 0, userData: {} }),
      "model_id: policy_net\n" +
        "version_number: 1\n" +
        "creation_timestamp: 2021-10-01T20:26:40Z\n" +
        "data_hash: jY0g3VkUK62ILPr2JuaW5g7uQi0EcJVZJu8IYp3yfhI=\n" +
        "data_size: 0\n" +
        "user_data: {}\n",
    );
    assert.equal(
      encodeVersionInfo({ ...baseVersion, versionNumber: 1234567, dataSize: 9007199254740991 }),
      "model_id: policy_net\n" +
        "version_number: 1234567\n" +
        "creation_timestamp: 2021-10-01T20:10:05.10745462Z\n" +
        "data_hash: jY0g3VkUK62ILPr2JuaW5g7uQi0EcJVZJu8IYp3yfhI=\n" +
        "data_size: 9007199254740991\n" +
        "user_data:\n" +
        '  step: "1000"\n',
    );
  });

  test("quotes strings YAML would read as something else, keys included", () => {
    assert.equal(
      encodeModelInfo({
        modelId: "true",
        userData: { a: "1000", b: "true", c: "null", d: "1.5", e: "", f: "yes", g: "~", h: "2021-10-01", i: "plain" },
      }),
      'model_id: "true"\n' +
        "user_data:\n" +
        '  a: "1000"\n' +
        '  b: "true"\n' +
        '  c: "null"\n' +
        '  d: "1.5"\n' +
        '  e: ""\n' +
        '  f: "yes"\n' +
        '  g: "~"\n' +
        '  h: "2021-10-01"\n' +
        "  i: plain\n",
    );
    assert.equal(
      encodeModelInfo({ modelId: "m", userData: { "10": "x", off: "on" } }),
      'model_id: m\nuser_data:\n  "10": x\n  "off": "on"\n',
    );
  });

  test("a `<<` key and characters YAML 1.1 forbids raw or reads as line breaks are quoted and escaped", () => {
    // Checked against gopkg.in/yaml.v2 2.4.0 (the original's YAML library): each of these read back
    // unchanged, while the raw forms fail ("map merge requires map", "control characters are not
    // allowed", "could not find expected ':'") or come back with a space in place of U+0085.
    assert.equal(
      encodeModelInfo({
        modelId: "m",
        userData: { "<<": "<<", "a\u2028b": "c\u0085d\u007f", e: "\u0080\u009f\ufffe\uffff", f: "p\u2029q" },
      }),
      'model_id: m\nuser_data:\n  "<<": "<<"\n  "a\\Lb": "c\\Nd\\x7F"\n  e: "\\x80\\x9F\\uFFFE\\uFFFF"\n  f: "p\\Pq"\n',
    );
  });

  test("orders user_data keys like yaml.v2: non-letters first, digit runs numerically", () => {
    const encoded = encodeModelInfo({
      modelId: "m",
      userData: { type: "1", step10: "2", framework: "3", Zeta: "4", step9: "5", "9": "6", "10": "7", _x: "8" },
    });
    assert.equal(
      encoded,
      "model_id: m\nuser_data:\n" +
        '  _x: "8"\n' +
        '  "9": "6"\n' +
        '  "10": "7"\n' +
        '  Zeta: "4"\n' +
        '  framework: "3"\n' +
        '  step9: "5"\n' +
        '  step10: "2"\n' +
        '  type: "1"\n',
    );
  });

  test("any string survives an encode/decode round trip", () => {
    const values = [
      "",
      "1000",
      "-1",
      "0x1F",
      "1e3",
      ".inf",
      "true",
      "No",
      "null",
      "~",
      "a: b",
      "a #b",
      "#x",
      "- x",
      "[a]",
      "{a}",
      "a,b",
      "*a",
      "&a",
      "!t",
      "|",
      ">",
      "%x",
      "@x",
      "`x",
      "'q",
      'say "hi"',
      "it's",
      " lead",
      "trail ",
      "multi\nline",
      "trailing newline\n",
      "\n",
      "tab\tinside",
      "\u0001control",
      "é ü 日本 🎉",
      "x".repeat(300) + " " + "y".repeat(300),
      "2021-10-01T20:10:05Z",
      "1:20",
      "<<",
      "__proto__",
      "a\u2028b\u2029c",
      "next\u0085line",
      "\u007f\u0080\u009f",
      "\ufffe\uffff",
    ];
    const userData = Object.fromEntries(values.map((value, index) => [`k${index}`, value]));
    const keyed = Object.fromEntries(values.map((value, index) => [value, String(index)]));
    assert.deepEqual(decodeModelInfo(encodeModelInfo({ modelId: "m", userData })), { modelId: "m", userData });
    assert.deepEqual(decodeModelInfo(encodeModelInfo({ modelId: "m", userData: keyed })), {
      modelId: "m",
      userData: keyed,
    });
    const version = { ...baseVersion, userData };
    assert.deepEqual(decodeVersionInfo(encodeVersionInfo(version)), version);
  });

  test("reads leniently: unquoted scalars keep their source text, unknown keys are ignored", () => {
    const text =
      "model_id: policy_net\n" +
      "version_number: 3\n" +
      "transient: true\n" +
      "archived: false\n" +
      "creation_timestamp: 2021-10-01T22:10:05.10745462+02:00\n" +
      "data_hash: abc=\n" +
      "data_size: 0\n" +
      "user_data:\n" +
      "  step: 1000\n" +
      "  ratio: 1.50\n" +
      "  flag: yes\n" +
      "  hex: 0x10\n" +
      "  when: 2021-10-01\n" +
      "  nothing: null\n" +
      "  tilde: ~\n" +
      "  empty:\n" +
      '  quoted: "null"\n' +
      "extra:\n" +
      "  - anything\n";
    assert.deepEqual(decodeVersionInfo(text), {
      modelId: "policy_net",
      versionNumber: 3,
      creationTimestamp: 1633119005107454620n,
      archived: true,
      dataHash: "abc=",
      dataSize: 0,
      userData: {
        step: "1000",
        ratio: "1.50",
        flag: "yes",
        hex: "0x10",
        when: "2021-10-01",
        // yaml.v2 stores a null into a Go string as "".
        nothing: "",
        tilde: "",
        empty: "",
        quoted: "null",
      },
    });
  });

  test("a missing, empty or null user_data is an empty map", () => {
    for (const tail of ["", "user_data:\n", "user_data: null\n", "user_data: ~\n", "user_data: {}\n"]) {
      assert.deepEqual(decodeModelInfo(`model_id: m\n${tail}`), { modelId: "m", userData: {} }, tail);
    }
    assert.deepEqual(decodeModelInfo('model_id: m\nuser_data: {"a": 1, b: x}\n'), {
      modelId: "m",
      userData: { a: "1", b: "x" },
    });
  });

  test("rejects missing or invalid fields with a descriptive error", () => {
    const valid = encodeVersionInfo(baseVersion);
    const replace = (key: string, line: string | undefined): string =>
      valid
        .split("\n")
        .filter((l) => line !== undefined || !l.startsWith(`${key}:`))
        .map((l) => (l.startsWith(`${key}:`) && line !== undefined ? line : l))
        .join("\n");
    const cases: [string, RegExp][] = [
      [replace("model_id", undefined), /^Error: version info: missing model_id$/],
      [replace("model_id", "model_id:"), /^Error: version info: missing model_id$/],
      [replace("model_id", "model_id: [a]"), /^Error: version info: model_id must be a scalar$/],
      [replace("model_id", 'model_id: ""'), /^Error: version info: model_id must not be empty$/],
      [replace("version_number", undefined), /^Error: version info: missing version_number$/],
      [replace("version_number", "version_number: 0"), /version_number must be an integer >= 1, got "0"/],
      [replace("version_number", "version_number: -1"), /version_number must be an integer >= 1, got "-1"/],
      [replace("version_number", "version_number: 1.5"), /version_number must be an integer >= 1, got "1.5"/],
      [replace("version_number", "version_number: 01"), /version_number must be an integer >= 1, got "01"/],
      [replace("data_size", "data_size: -1"), /data_size must be an integer >= 0, got "-1"/],
      [replace("data_size", "data_size: abc"), /data_size must be an integer >= 0, got "abc"/],
      [replace("data_size", "data_size: 9007199254740993"), /data_size must be an integer >= 0/],
      [replace("data_size", undefined), /missing data_size/],
      [replace("data_hash", undefined), /missing data_hash/],
      [replace("creation_timestamp", undefined), /missing creation_timestamp/],
      [
        replace("creation_timestamp", "creation_timestamp: yesterday"),
        /^Error: version info: creation_timestamp: invalid timestamp "yesterday"/,
      ],
      [valid.replace(/user_data:\n.*\n$/, "user_data: [a, b]\n"), /user_data must be a mapping of strings/],
      ["- a\n- b\n", /expected a YAML mapping at the top level/],
      ["model_id: [unclosed\n", /^Error: version info: invalid YAML/],
      ["model_id: a\nmodel_id: b\n", /^Error: version info: invalid YAML/],
    ];
    for (const [text, expected] of cases) {
      assert.throws(() => decodeVersionInfo(text), expected, text);
    }
    assert.throws(() => decodeModelInfo("user_data: {}\n"), /^Error: model info: missing model_id$/);
    assert.throws(() => decodeModelInfo("model_id: m\nuser_data:\n  a:\n    b: c\n"), /user_data must be a mapping/);
  });
});
