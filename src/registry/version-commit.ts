import type { StreamedVersionData } from "../archive/index.js";
import type { EncodedVersionData } from "../data/index.js";
import type { TransientDataSink } from "../state/index.js";
import type { Reservation } from "./version-cache.js";

/** Where a received version's bytes are: in memory (reserved in the cache), or streamed to the archive. */
export type CommitPayload =
  | {
      readonly kind: "memory";
      readonly data: EncodedVersionData;
      readonly reservation: Reservation;
      /** Where a shared registry state received the transient bytes as they arrived (see RegistryState.beginTransientData). */
      readonly shared?: TransientDataSink | undefined;
    }
  | { readonly kind: "stream"; readonly stream: StreamedVersionData; readonly dataSize: number };

/** A fully received, hash-checked upload waiting for its version number. */
export interface VersionCommit {
  readonly generation: number;
  readonly archived: boolean;
  readonly creationTimestamp: bigint;
  readonly dataHash: string;
  readonly userData: Readonly<Record<string, string>>;
  readonly payload: CommitPayload;
}
