/**
 * A model or version info file's top level, as the decoders check it: what both the fast path
 * (yaml-fast-path.ts) and the full `yaml` library produce, so that one set of checks gives the same
 * records and the same errors whichever of them read the file.
 */
export type YamlField =
  /** An absent value, or a plain `~`, `null`, `Null` or `NULL`. */
  | { readonly kind: "null" }
  /** Any other scalar, as the failsafe schema reads it: its text. */
  | { readonly kind: "scalar"; readonly text: string }
  /** A mapping of scalars (a null value is already ""). */
  | { readonly kind: "map"; readonly entries: readonly (readonly [string, string])[] }
  /** A sequence, or a mapping holding more than scalars. */
  | { readonly kind: "other" };

/** The top-level keys of a file, in file order, each with its value. */
export type YamlFields = ReadonlyMap<string, YamlField>;

/** Plain scalars that YAML (and yaml.v2) reads as null; yaml.v2 stores null as "" in a string. */
export const PLAIN_NULLS: ReadonlySet<string> = new Set(["", "~", "null", "Null", "NULL"]);
