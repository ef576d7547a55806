/*
 * The archive's info files as this server and the original Go server write them, read without the
 * `yaml` library: one `key: value` per line, and `user_data` as a block of `  key: value` lines (or
 * `{}`). Start-up reads every model's info and a model's first use reads all its version infos, so
 * this is the common path; anything outside this narrow shape (comments, flow collections, escapes,
 * multi-line scalars, indicators, tabs, CR, duplicate keys…) gives undefined and the caller parses the
 * file with the full library. Accepted files give exactly what the library gives (checked by
 * test/unit/archive-yaml-fast-path.test.ts on the fixtures and on randomized files).
 */
import { PLAIN_NULLS, type YamlField, type YamlFields } from "./yaml-fields.js";

// Characters taken as they are: no YAML indicator, no space, tab or line break; beyond ASCII, none of
// C1 controls, U+2028/U+2029, the byte order mark and the non-characters U+FFFE/U+FFFF.
const WORD = "A-Za-z0-9_\\u00a0-\\u2027\\u202a-\\ufefe\\uff00-\\ufffd";
const INNER = `${WORD}./+=@\\-`;
/** A plain scalar: starts without an indicator, never holds "#", ends with neither a space nor ':'. */
const PLAIN = new RegExp(`^(?:[${WORD}./+]|-[${INNER}])(?:[${INNER}: ]*[${INNER}])?$`);
// Quoted scalars on one line: no escapes in double quotes, '' for ' in single quotes.
const NON_ASCII = "\\u00a0-\\u2027\\u202a-\\ufefe\\uff00-\\ufffd";
const DOUBLE_QUOTED = `"[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e${NON_ASCII}]*"`;
const SINGLE_QUOTED = `'(?:[\\x20-\\x26\\x28-\\x7e${NON_ASCII}]|'')*'`;
const QUOTED = new RegExp(`^(?:${DOUBLE_QUOTED}|${SINGLE_QUOTED})$`);
/** A key: plain (starting with a letter, a digit or '_') or quoted. */
const KEY = `[${WORD}](?:[${INNER}: ]*[${INNER}])?|${DOUBLE_QUOTED}|${SINGLE_QUOTED}`;
const TOP_LINE = new RegExp(`^(${KEY}):(?: (.+))?$`);
const NESTED_LINE = new RegExp(`^  (${KEY}):(?: (.+))?$`);

/** A scalar's text, null for a plain null, undefined when it is not one of the simple forms. */
function scalar(token: string): string | null | undefined {
  if (PLAIN_NULLS.has(token)) {
    return null;
  }
  if (PLAIN.test(token)) {
    // ": " would make a plain scalar a mapping (an error).
    return token.includes(": ") ? undefined : token;
  }
  if (!QUOTED.test(token)) {
    return undefined;
  }
  const inner = token.slice(1, -1);
  return token.startsWith("'") ? inner.replaceAll("''", "'") : inner;
}

/** A key's text (a plain null is a string as a key), undefined when it is not one of the simple forms. */
function keyText(token: string): string | undefined {
  const text = scalar(token);
  return text === null ? token : text;
}

const NULL_FIELD: YamlField = { kind: "null" };

/** The file's top-level fields, or undefined when the file is not in the simple shape. */
export function parseSimpleYaml(text: string): YamlFields | undefined {
  if (!text.endsWith("\n") || text.includes("\r")) {
    return undefined;
  }
  const lines = text.split("\n");
  lines.pop(); // after the final line break
  if (lines.length === 0) {
    return undefined;
  }
  const fields = new Map<string, YamlField>();
  for (let i = 0; i < lines.length; i++) {
    const top = TOP_LINE.exec(lines[i] ?? "");
    if (top === null) {
      return undefined;
    }
    const [, keyToken = "", value] = top;
    const key = keyText(keyToken);
    if (key === undefined || fields.has(key)) {
      return undefined;
    }
    if (value === "{}") {
      fields.set(key, { kind: "map", entries: [] });
      continue;
    }
    if (value !== undefined) {
      const text = scalar(value);
      if (text === undefined) {
        return undefined;
      }
      fields.set(key, text === null ? NULL_FIELD : { kind: "scalar", text });
      continue;
    }
    // `key:` alone: null, or the block of a mapping below it (only user_data has one).
    const entries: [string, string][] = [];
    const seen = new Set<string>();
    for (; i + 1 < lines.length && (lines[i + 1] ?? "").startsWith(" "); i++) {
      const nested = key === "user_data" ? NESTED_LINE.exec(lines[i + 1] ?? "") : null;
      if (nested === null) {
        return undefined;
      }
      const [, nestedKeyToken = "", nestedValue] = nested;
      const nestedKey = keyText(nestedKeyToken);
      const nestedText = nestedValue === undefined ? null : scalar(nestedValue);
      if (nestedKey === undefined || nestedText === undefined || seen.has(nestedKey)) {
        return undefined;
      }
      seen.add(nestedKey);
      entries.push([nestedKey, nestedText ?? ""]);
    }
    fields.set(key, entries.length === 0 ? NULL_FIELD : { kind: "map", entries });
  }
  return fields;
}
