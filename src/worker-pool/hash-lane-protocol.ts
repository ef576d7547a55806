/** Messages between the main thread and a hash lane thread (hash-lanes.ts, hash-lane-worker.ts). */

export type LaneRequest =
  /** Hash these bytes next for this stream (its hash begins at its first message). */
  | { readonly kind: "update"; readonly stream: number; readonly segments: readonly Uint8Array[] }
  /** The stream's digest; its hash is released. */
  | { readonly kind: "digest"; readonly stream: number }
  /** The stream was given up: release its hash, no reply. */
  | { readonly kind: "abandon"; readonly stream: number }
  /** How many hashes the thread holds (tests, leak checks). */
  | { readonly kind: "count" };

export type LaneReply =
  | { readonly kind: "hashed"; readonly stream: number }
  | { readonly kind: "digest"; readonly stream: number; readonly digest: string }
  | { readonly kind: "failed"; readonly stream: number; readonly message: string }
  | { readonly kind: "count"; readonly open: number };
