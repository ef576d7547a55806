/** What a CreateVersion header announces, validated. */
export interface UploadHeader {
  readonly modelId: string;
  readonly archived: boolean;
  /** Nanoseconds since the epoch; 0 means "now" (at commit). */
  readonly creationTimestamp: bigint;
  /** Expected SHA-256 (standard padded base64); "" skips the check. */
  readonly dataHash: string;
  readonly dataSize: number;
  readonly userData: Readonly<Record<string, string>>;
}
