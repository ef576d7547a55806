/** A model as the registry keeps it (what ModelInfo carries on the wire). */
export interface ModelRecord {
  readonly modelId: string;
  readonly userData: Readonly<Record<string, string>>;
}

/** A committed version's metadata (what ModelVersionInfo carries on the wire). */
export interface VersionRecord {
  readonly modelId: string;
  readonly versionNumber: number;
  /** Nanoseconds since the Unix epoch. */
  readonly creationTimestamp: bigint;
  readonly archived: boolean;
  /** SHA-256 of the data, standard base64 with padding. */
  readonly dataHash: string;
  readonly dataSize: number;
  readonly userData: Readonly<Record<string, string>>;
}

/**
 * The user_data of every model and version that has none: one frozen object instead of a new `{}`
 * each (about 50 bytes per version, which adds up over a cache of tiny versions).
 */
export const EMPTY_USER_DATA: Readonly<Record<string, string>> = Object.freeze({});
