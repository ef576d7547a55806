import { cutText } from "../cut-text.js";
import { invalidArgument } from "../errors/index.js";
import type { UploadHeader } from "./upload-header.js";

/** The checks every CreateVersion upload makes against its header, however its bytes are kept. */

/** More bytes than data_size fail as soon as they arrive. */
export function checkNotOverSize(header: UploadHeader, receivedSoFar: number): void {
  if (receivedSoFar > header.dataSize) {
    throw invalidArgument(
      `received more data than the header's data_size: ${receivedSoFar} bytes so far, data_size is ${header.dataSize}`,
    );
  }
}

export function checkComplete(header: UploadHeader, received: number): void {
  if (received !== header.dataSize) {
    throw invalidArgument(`received ${received} bytes of data but the header's data_size is ${header.dataSize}`);
  }
}

/** An empty data_hash in the header skips the check. */
export function checkHash(header: UploadHeader, dataHash: string): void {
  if (header.dataHash !== "" && header.dataHash !== dataHash) {
    throw invalidArgument(
      `data_hash mismatch: the header says "${cutText(header.dataHash, 64)}" but the received data's SHA-256 (base64) is "${dataHash}"`,
    );
  }
}

/** The header's timestamp when > 0, else now. */
export function creationTimestampOf(header: UploadHeader, now: () => bigint): bigint {
  return header.creationTimestamp > 0n ? header.creationTimestamp : now();
}
