/*
 * The YAML files of the archive, byte-compatible with the original Go server (gopkg.in/yaml.v2):
 * fixed key order, `user_data` keys in yaml.v2's order, strings quoted when YAML 1.1 would read
 * them as something else ("1000", "true", "yes", "null", "2021-10-01", ...).
 */
import { createRequire } from "node:module";
import type { Document, Scalar, ScalarTag } from "yaml";
import type { ModelRecord, VersionRecord } from "../domain/index.js";
import { parseSimpleYaml } from "./yaml-fast-path.js";
import { PLAIN_NULLS, type YamlField, type YamlFields } from "./yaml-fields.js";
import { formatRfc3339Nano, parseRfc3339Nano } from "./timestamp.js";
import type * as YamlLibrary from "./yaml-library.js";

let library: typeof YamlLibrary | undefined;

/**
 * The `yaml` package, loaded (synchronously) at its first use: writing an info file, or reading one
 * the fast path (yaml-fast-path.ts) does not take. Not imported with this module: the start of the
 * server does neither (issue #15, start-up); the server loads it a moment after listening
 * (preloadYamlLibrary, from Core.startDeferred), so the first write does not wait for it either.
 */
function yaml(): typeof YamlLibrary {
  library ??= createRequire(import.meta.url)("./yaml-library.js") as typeof YamlLibrary;
  return library;
}

/** Loads the `yaml` package now if it is not yet (see yaml()). */
export function preloadYamlLibrary(): void {
  yaml();
}

/** A timestamp already formatted as Go does; written as a plain scalar, never quoted. */
class GoTimestamp {
  constructor(readonly text: string) {}
}

const goTimestampTag: ScalarTag = {
  identify: (value) => value instanceof GoTimestamp,
  tag: "tag:cogment-ts:go-timestamp",
  // Default: stringified without an explicit tag, like Go's time.Time.
  default: true,
  resolve: (text) => text,
  stringify: (item) => (item.value instanceof GoTimestamp ? item.value.text : String(item.value)),
};

/**
 * yaml.v2's map key order (its `keyList.Less`), in which Go marshals map keys: at the first
 * difference, non-letters sort before letters and runs of digits compare numerically.
 */
function goYamlKeyLess(a: string, b: string): boolean {
  const ar = Array.from(a);
  const br = Array.from(b);
  const isLetter = (c: string | undefined): boolean => c !== undefined && /^\p{L}$/u.test(c);
  const isDigit = (c: string | undefined): boolean => c !== undefined && /^\p{Nd}$/u.test(c);
  const rune = (c: string | undefined): number => c?.codePointAt(0) ?? 0;
  for (let i = 0; i < ar.length && i < br.length; i++) {
    const ca = ar[i];
    const cb = br[i];
    if (ca === cb) {
      continue;
    }
    const al = isLetter(ca);
    const bl = isLetter(cb);
    if (al && bl) {
      return rune(ca) < rune(cb);
    }
    if (al || bl) {
      return bl;
    }
    let an = 0n;
    let bn = 0n;
    if (ca === "0" || cb === "0") {
      for (let j = i - 1; j >= 0 && isDigit(ar[j]); j--) {
        if (ar[j] !== "0") {
          an = 1n;
          bn = 1n;
          break;
        }
      }
    }
    let ai = i;
    for (; ai < ar.length && isDigit(ar[ai]); ai++) {
      an = BigInt.asIntN(64, an * 10n + BigInt(rune(ar[ai]) - 48));
    }
    let bi = i;
    for (; bi < br.length && isDigit(br[bi]); bi++) {
      bn = BigInt.asIntN(64, bn * 10n + BigInt(rune(br[bi]) - 48));
    }
    if (an !== bn) {
      return an < bn;
    }
    if (ai !== bi) {
      return ai < bi;
    }
    return rune(ca) < rune(cb);
  }
  return ar.length < br.length;
}

/**
 * Builds a YAML document: `model_id` first, then `fields`, then `userData` as a map in yaml.v2's
 * key order under "user_data".
 */
function stringifyDocument(modelId: string, fields: Record<string, unknown>, userData: Readonly<Record<string, string>>): string {
  // YAML 1.1 quoting rules are the ones yaml.v2 applies.
  // Without the merge tag, whose stringify ignores quoting: stringNode quotes a `<<` itself.
  const { Document, Pair, YAMLMap } = yaml();
  const doc = new Document(undefined, {
    version: "1.1",
    customTags: (tags) => [...tags.filter((tag) => typeof tag === "string" || tag.tag !== "tag:yaml.org,2002:merge"), goTimestampTag],
  });
  // An explicit YAMLMap: a JS object would put integer-like keys first, a JS Map would become !!omap.
  const userDataNode = new YAMLMap<unknown, unknown>(doc.schema);
  const keys = Object.keys(userData).sort((a, b) => (goYamlKeyLess(a, b) ? -1 : goYamlKeyLess(b, a) ? 1 : 0));
  for (const key of keys) {
    userDataNode.items.push(new Pair(stringNode(doc, key), stringNode(doc, userData[key] ?? "")));
  }
  doc.contents = doc.createNode({ model_id: stringNode(doc, modelId), ...fields, user_data: userDataNode });
  // No line folding: a long value stays on one line whatever reads it.
  return escapeUnprintable(doc.toString({ lineWidth: 0 }));
}

/**
 * Characters YAML 1.1 does not allow raw (DEL, C1 controls, the byte order mark U+FEFF,
 * U+FFFE/U+FFFF) or reads as line breaks (U+0085, U+2028, U+2029): yaml.v2 rejects the first and
 * folds the second, and the `yaml` package writes both raw. A string holding one (a user_data key
 * or value, or the model id) is double-quoted, and the character escaped.
 */
const UNPRINTABLE = /[\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]/g;
const NAMED_ESCAPES: Readonly<Record<string, string>> = { "\u0085": "\\N", "\u2028": "\\L", "\u2029": "\\P" };

function stringNode(doc: Document, text: string): Scalar {
  const node = doc.createNode(text);
  // A plain `<<` key is YAML 1.1's merge key: yaml.v2 fails on it ("map merge requires map").
  if (text === "<<" || text.search(UNPRINTABLE) !== -1) {
    node.type = yaml().Scalar.QUOTE_DOUBLE;
  }
  return node;
}

/** Escapes UNPRINTABLE characters: they only occur inside the double-quoted strings of stringNode. */
function escapeUnprintable(text: string): string {
  return text.replace(UNPRINTABLE, (char) => {
    const code = char.charCodeAt(0);
    return NAMED_ESCAPES[char] ?? (code <= 0xff ? `\\x${code.toString(16).toUpperCase().padStart(2, "0")}` : `\\u${code.toString(16).toUpperCase()}`);
  });
}

export function encodeModelInfo(model: ModelRecord): string {
  return stringifyDocument(model.modelId, {}, model.userData);
}

/** The original's version info keys, in its order (no `archived`: every archived file is archived). */
export function encodeVersionInfo(version: VersionRecord): string {
  return stringifyDocument(
    version.modelId,
    {
      version_number: version.versionNumber,
      creation_timestamp: new GoTimestamp(formatRfc3339Nano(version.creationTimestamp)),
      data_hash: version.dataHash,
      data_size: version.dataSize,
    },
    version.userData,
  );
}

function isPlainNull(node: unknown): boolean {
  const { isScalar, Scalar } = yaml();
  return isScalar(node) && node.type === Scalar.PLAIN && PLAIN_NULLS.has(String(node.value));
}

/** One value of the library's document as the checks see it (yaml-fields.ts). */
function toField(node: unknown): YamlField {
  const { isMap, isScalar } = yaml();
  if (node === undefined || node === null || isPlainNull(node)) {
    return { kind: "null" };
  }
  if (isScalar(node)) {
    return { kind: "scalar", text: String(node.value) };
  }
  if (!isMap(node)) {
    return { kind: "other" };
  }
  const entries: [string, string][] = [];
  for (const pair of node.items) {
    const key: unknown = pair.key;
    const value: unknown = pair.value;
    if (!isScalar(key) || (value !== null && !isScalar(value))) {
      return { kind: "other" };
    }
    entries.push([String(key.value), isScalar(value) && !isPlainNull(value) ? String(value.value) : ""]);
  }
  return { kind: "map", entries };
}

/**
 * The full library (exported for the fast path's tests). Parses with the failsafe schema: every
 * scalar stays the string it is in the file, so `step: 1000` gives "1000" (which is also what
 * yaml.v2 gives for a `map[string]string`).
 */
export function parseFieldsWithLibrary(text: string, what: string): YamlFields {
  const { isMap, isScalar, parseDocument } = yaml();
  const doc = parseDocument(text, { schema: "failsafe", prettyErrors: false });
  const [firstError] = doc.errors;
  if (firstError !== undefined) {
    throw new Error(`${what}: invalid YAML: ${firstError.message}`);
  }
  const contents: unknown = doc.contents;
  if (!isMap(contents)) {
    throw new Error(`${what}: expected a YAML mapping at the top level`);
  }
  const fields = new Map<string, YamlField>();
  for (const pair of contents.items) {
    if (isScalar(pair.key)) {
      fields.set(String(pair.key.value), toField(pair.value));
    }
  }
  return fields;
}

/** The files as the archive writes them take the fast path; anything else the full library. */
function parseTopLevelMap(text: string, what: string): YamlFields {
  return parseSimpleYaml(text) ?? parseFieldsWithLibrary(text, what);
}

function scalarText(fields: YamlFields, key: string, what: string): string {
  const field = fields.get(key);
  if (field === undefined || field.kind === "null") {
    throw new Error(`${what}: missing ${key}`);
  }
  if (field.kind !== "scalar") {
    throw new Error(`${what}: ${key} must be a scalar`);
  }
  return field.text;
}

function modelIdField(fields: YamlFields, what: string): string {
  const modelId = scalarText(fields, "model_id", what);
  if (modelId === "") {
    throw new Error(`${what}: model_id must not be empty`);
  }
  return modelId;
}

function integerField(fields: YamlFields, key: string, what: string, minimum: number): number {
  const text = scalarText(fields, key, what);
  const value = /^(0|[1-9][0-9]*)$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < minimum) {
    throw new Error(`${what}: ${key} must be an integer >= ${minimum}, got ${JSON.stringify(text)}`);
  }
  return value;
}

function userDataField(fields: YamlFields, what: string): Record<string, string> {
  const field = fields.get("user_data");
  if (field === undefined || field.kind === "null") {
    return {};
  }
  if (field.kind !== "map") {
    throw new Error(`${what}: user_data must be a mapping of strings`);
  }
  // fromEntries defines own properties, so even a "__proto__" key is kept as data.
  return Object.fromEntries(field.entries);
}

export function decodeModelInfo(text: string): ModelRecord {
  const what = "model info";
  const fields = parseTopLevelMap(text, what);
  return { modelId: modelIdField(fields, what), userData: userDataField(fields, what) };
}

/** Decodes a version info file; unknown keys (e.g. `transient`) are ignored, the result is archived. */
export function decodeVersionInfo(text: string): VersionRecord {
  const what = "version info";
  const fields = parseTopLevelMap(text, what);
  const modelId = modelIdField(fields, what);
  const versionNumber = integerField(fields, "version_number", what, 1);
  const timestampText = scalarText(fields, "creation_timestamp", what);
  let creationTimestamp: bigint;
  try {
    creationTimestamp = parseRfc3339Nano(timestampText);
  } catch (error) {
    throw new Error(`${what}: creation_timestamp: ${(error as Error).message}`, { cause: error });
  }
  const dataHash = scalarText(fields, "data_hash", what);
  const dataSize = integerField(fields, "data_size", what, 0);
  return {
    modelId,
    versionNumber,
    creationTimestamp,
    archived: true,
    dataHash,
    dataSize,
    userData: userDataField(fields, what),
  };
}
