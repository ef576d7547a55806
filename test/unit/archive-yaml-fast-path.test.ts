import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { decodeModelInfo, decodeVersionInfo, encodeModelInfo, encodeVersionInfo, parseFieldsWithLibrary } from "../../src/archive/yaml-codec.js";
import { parseSimpleYaml } from "../../src/archive/yaml-fast-path.js";
import type { VersionRecord } from "../../src/domain/index.js";
import { ORIGINAL_ARCHIVE } from "../support/fixtures.js";

/** A small seeded generator (mulberry32), so a failure names the case that reproduces it. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(next: () => number, items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;

const ORDINARY = [..."abcxyzABC0123456789_abcxyz-./+=@: ", "é", "模", "😀"];
/** Characters that matter to YAML. */
const SPECIAL = [..."#?'\"\\{}[],&*!|>%`~\t:- ", "\u00a0", "\u0085", "\u2028", "\u2029", "\ufeff", "\ufffe", "\u007f", "\u0001", "\ud800"];

function randomText(next: () => number, maxLength: number): string {
  const length = Math.floor(next() * (maxLength + 1));
  const special = next() < 0.3 ? 0.2 : 0;
  let text = "";
  for (let i = 0; i < length; i++) {
    text += pick(next, next() < special ? SPECIAL : ORDINARY);
  }
  return text;
}

function randomScalar(next: () => number): string {
  const roll = next();
  if (roll < 0.1) {
    return pick(next, ["~", "null", "NULL", "Null", "{}", "[a]", "1000", "true", "2021-10-01", "", " ", "- x", "&a x", "*a"]);
  }
  const text = randomText(next, 12);
  if (roll < 0.3) {
    return `"${text}"`;
  }
  if (roll < 0.45) {
    return `'${text}'`;
  }
  return text;
}

const TOP_KEYS = ["model_id", "version_number", "creation_timestamp", "data_hash", "data_size", "user_data", "transient", "extra"];

/** A random file: mostly the archive's shape, with every kind of deviation mixed in. */
function randomDocument(next: () => number): string {
  const lines: string[] = [];
  const count = 1 + Math.floor(next() * 5);
  for (let i = 0; i < count; i++) {
    const key = next() < 0.9 ? pick(next, TOP_KEYS) : randomText(next, 6);
    if (next() < 0.3) {
      lines.push(`${key}:`);
      const nested = Math.floor(next() * 4);
      for (let j = 0; j < nested; j++) {
        const indent = next() < 0.95 ? "  " : pick(next, [" ", "    ", "\t", "   "]);
        const nestedKey = next() < 0.6 ? pick(next, ["step", "a", "b", "type", "<<", "__proto__", "null"]) : randomText(next, 5);
        lines.push(next() < 0.15 ? `${indent}${nestedKey}:` : `${indent}${nestedKey}: ${randomScalar(next)}`);
      }
    } else {
      lines.push(`${key}: ${randomScalar(next)}`);
    }
    if (next() < 0.01) {
      lines.push(pick(next, ["# comment", "", "---", "- item", "  continued"]));
    }
  }
  let text = lines.join("\n");
  const end = next();
  text += end < 0.97 ? "\n" : end < 0.985 ? "" : "\r\n";
  return text;
}

/** What the full library makes of a file, or the error it throws. */
function libraryOutcome(text: string): unknown {
  try {
    return parseFieldsWithLibrary(text, "file");
  } catch (error) {
    return { error: (error as Error).message };
  }
}

function randomVersion(next: () => number, ordinary: boolean): VersionRecord {
  const text = (): string => (ordinary ? randomWord(next) : randomText(next, 10));
  const userData: Record<string, string> = {};
  for (let i = Math.floor(next() * 4); i > 0; i--) {
    userData[text() || "k"] = text();
  }
  return {
    modelId: ordinary ? randomWord(next) || "m" : `m${text()}`,
    versionNumber: 1 + Math.floor(next() * 1_000_000),
    creationTimestamp: BigInt(Math.floor(next() * 2 ** 50)) * 1000n + BigInt(Math.floor(next() * 1000)),
    archived: true,
    dataHash: Buffer.from(Array.from({ length: 32 }, () => Math.floor(next() * 256))).toString("base64"),
    dataSize: Math.floor(next() * 2 ** 40),
    userData,
  };
}

/** Names and values as people write them: letters, digits and `_-.`, nothing YAML cares about. */
function randomWord(next: () => number): string {
  const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.";
  const length = 1 + Math.floor(next() * 12);
  let word = "";
  for (let i = 0; i < length; i++) {
    word += letters[Math.floor(next() * letters.length)];
  }
  return /^[a-zA-Z0-9_]/.test(word) ? word : `x${word}`;
}

describe("archive YAML fast path", () => {
  test("reads every file of the original Go server's archive as the full library does", async () => {
    let files = 0;
    for (const dir of await fs.readdir(ORIGINAL_ARCHIVE)) {
      for (const name of await fs.readdir(path.join(ORIGINAL_ARCHIVE, dir))) {
        if (!name.endsWith(".yaml")) {
          continue;
        }
        const text = await fs.readFile(path.join(ORIGINAL_ARCHIVE, dir, name), "utf8");
        const fast = parseSimpleYaml(text);
        assert.notEqual(fast, undefined, `${name} should take the fast path`);
        assert.deepEqual(fast, parseFieldsWithLibrary(text, name), name);
        files++;
      }
    }
    assert.equal(files, 9);
  });

  test("random files: whatever the fast path accepts, the library reads the same", () => {
    const seed = 20261204;
    const next = random(seed);
    let accepted = 0;
    const cases = 20_000;
    for (let i = 0; i < cases; i++) {
      const text = randomDocument(next);
      const fast = parseSimpleYaml(text);
      if (fast !== undefined) {
        accepted++;
        assert.deepEqual(fast, libraryOutcome(text), `seed ${seed}, case ${i}: ${JSON.stringify(text)}`);
      }
    }
    // Both paths must be exercised, or the comparison proves little.
    assert.ok(accepted > cases * 0.1 && accepted < cases * 0.9, `${accepted} of ${cases} accepted`);
  });

  test("random records: what the archive writes takes the fast path and decodes as the library does", () => {
    const seed = 15;
    const next = random(seed);
    for (let i = 0; i < 5000; i++) {
      const ordinary = i % 2 === 0;
      const version = randomVersion(next, ordinary);
      const texts = [encodeVersionInfo(version), encodeModelInfo({ modelId: version.modelId, userData: version.userData })];
      for (const text of texts) {
        const fast = parseSimpleYaml(text);
        if (ordinary) {
          assert.notEqual(fast, undefined, `seed ${seed}, case ${i}: ${JSON.stringify(text)}`);
        }
        if (fast !== undefined) {
          assert.deepEqual(fast, parseFieldsWithLibrary(text, "file"), `seed ${seed}, case ${i}: ${JSON.stringify(text)}`);
        }
      }
      assert.deepEqual(decodeVersionInfo(texts[0] as string), version, `seed ${seed}, case ${i}`);
      assert.deepEqual(decodeModelInfo(texts[1] as string), { modelId: version.modelId, userData: version.userData }, `seed ${seed}, case ${i}`);
    }
  });

  test("declines what it does not read exactly", () => {
    const declined = [
      "model_id: m # comment\n",
      "model_id: m\r\n",
      "model_id: m",
      "model_id: m\nmodel_id: n\n",
      "model_id: m\nuser_data:\n  a: 1\n  a: 2\n",
      "model_id: m\nuser_data:\n  a:\n    b: c\n",
      "model_id: m\nuser_data: {a: 1}\n",
      'model_id: "a\\tb"\n',
      "model_id: a: b\n",
      "model_id: - a\n",
      "model_id: &anchor m\n",
      "model_id: m\n  continued\n",
      "model_id: m\n\n",
      "---\nmodel_id: m\n",
      "\ufeffmodel_id: m\n",
      "model_id:\tm\n",
      "model_id: m \n",
      "<<: m\n",
      "",
    ];
    for (const text of declined) {
      assert.equal(parseSimpleYaml(text), undefined, JSON.stringify(text));
    }
  });

  test("reads the simple forms: plain, quoted, nulls, empty and block user_data", () => {
    assert.deepEqual(
      parseSimpleYaml("model_id: m\ndata_hash: +a/b=\nempty:\ntilde: ~\nq: \"1000\"\ns: 'it''s'\nuser_data:\n  step: \"2\"\n  none:\n  n: null\n"),
      new Map<string, unknown>([
        ["model_id", { kind: "scalar", text: "m" }],
        ["data_hash", { kind: "scalar", text: "+a/b=" }],
        ["empty", { kind: "null" }],
        ["tilde", { kind: "null" }],
        ["q", { kind: "scalar", text: "1000" }],
        ["s", { kind: "scalar", text: "it's" }],
        [
          "user_data",
          {
            kind: "map",
            entries: [
              ["step", "2"],
              ["none", ""],
              ["n", ""],
            ],
          },
        ],
      ]),
    );
    assert.deepEqual(parseSimpleYaml("model_id: m\nuser_data: {}\n")?.get("user_data"), { kind: "map", entries: [] });
  });
});
