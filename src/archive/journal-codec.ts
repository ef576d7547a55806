/*
 * The bytes of the model journal (model-journal.ts), `<archive>/.cogment-ts-journal`:
 *   header, at 0 (HEADER_BYTES, a sector of its own):
 *     "CTSJRNL1" | epoch u32 LE | CRC-32 of the 12 bytes before, u32 LE
 *     then, only in a header written by a clean stop: "CLEAN\0\0\0" | CRC-32 of the 24 bytes before
 *     (readers that predate it check the first 16 bytes only: the same epoch for them)
 *   records, one after another from RECORDS_START:
 *     payload length u32 LE | epoch u32 LE | CRC-32 of epoch and payload, u32 LE | payload
 *   payload: path length u16 LE | the file's path below the archive, UTF-8 | the file's bytes
 * A reset writes a header with a new epoch: records left behind by an earlier epoch, and a torn
 * tail, end the valid records (their epoch or checksum is wrong), so the file is reused as it is.
 */
import { crc32 } from "node:zlib";

const MAGIC = Buffer.from("CTSJRNL1", "latin1");
export const HEADER_BYTES = 512;
export const RECORDS_START = HEADER_BYTES;
const RECORD_HEAD_BYTES = 12;
const PATH_LENGTH_BYTES = 2;
const MAX_PATH_BYTES = 0xffff;

/** One journaled file: where it goes, below the archive directory, and its exact bytes. */
export interface JournalRecord {
  readonly relativePath: string;
  readonly content: Uint8Array;
}

const CLEAN_MARK = Buffer.from("CLEAN\0\0\0", "latin1");
const CLEAN_MARK_AT = MAGIC.length + 8;
const CLEAN_CHECKSUM_AT = CLEAN_MARK_AT + CLEAN_MARK.length;

/** A header of `epoch`; `clean` marks one written by a clean stop (see model-journal.ts for what it proves). */
export function encodeHeader(epoch: number, clean = false): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt32LE(epoch, MAGIC.length);
  header.writeUInt32LE(crc32(header.subarray(0, MAGIC.length + 4)), MAGIC.length + 4);
  if (clean) {
    CLEAN_MARK.copy(header, CLEAN_MARK_AT);
    header.writeUInt32LE(crc32(header.subarray(0, CLEAN_CHECKSUM_AT)), CLEAN_CHECKSUM_AT);
  }
  return header;
}

/** Whether a valid header (decodeHeader) carries the clean-stop mark. */
export function isCleanHeader(bytes: Uint8Array): boolean {
  const header = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return (
    decodeHeader(header) !== undefined &&
    header.byteLength >= CLEAN_CHECKSUM_AT + 4 &&
    header.subarray(CLEAN_MARK_AT, CLEAN_CHECKSUM_AT).equals(CLEAN_MARK) &&
    header.readUInt32LE(CLEAN_CHECKSUM_AT) === crc32(header.subarray(0, CLEAN_CHECKSUM_AT))
  );
}

/**
 * Whether any record of `epoch` may begin anywhere in the journal after its header: whether the
 * epoch's 4 bytes occur at any offset where a record's epoch field could be (a record of another
 * epoch may hold them by chance: then true, the safe answer).
 */
export function mayHoldRecordOf(journal: Uint8Array, epoch: number): boolean {
  const bytes = Buffer.from(journal.buffer, journal.byteOffset, journal.byteLength);
  const pattern = Buffer.alloc(4);
  pattern.writeUInt32LE(epoch >>> 0, 0);
  return bytes.indexOf(pattern, RECORDS_START + 4) !== -1;
}

/** The header's epoch, or undefined if the header is not a valid one (never written, torn, another file). */
export function decodeHeader(bytes: Uint8Array): number | undefined {
  const header = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (header.byteLength < MAGIC.length + 8 || !header.subarray(0, MAGIC.length).equals(MAGIC)) {
    return undefined;
  }
  const checksum = header.readUInt32LE(MAGIC.length + 4);
  return crc32(header.subarray(0, MAGIC.length + 4)) === checksum ? header.readUInt32LE(MAGIC.length) : undefined;
}

function recordChecksum(epochBytes: Uint8Array, payload: readonly Uint8Array[]): number {
  return payload.reduce((crc, part) => crc32(part, crc), crc32(epochBytes));
}

/** The bytes of one record of `epoch`. */
export function encodeRecord(epoch: number, record: JournalRecord): Buffer {
  const pathBytes = Buffer.from(record.relativePath, "utf8");
  if (pathBytes.byteLength > MAX_PATH_BYTES) {
    throw new Error(`journal record path of ${pathBytes.byteLength} bytes: at most ${MAX_PATH_BYTES} fit`);
  }
  const payloadBytes = PATH_LENGTH_BYTES + pathBytes.byteLength + record.content.byteLength;
  const bytes = Buffer.alloc(RECORD_HEAD_BYTES + payloadBytes);
  bytes.writeUInt32LE(payloadBytes, 0);
  bytes.writeUInt32LE(epoch, 4);
  bytes.writeUInt16LE(pathBytes.byteLength, RECORD_HEAD_BYTES);
  pathBytes.copy(bytes, RECORD_HEAD_BYTES + PATH_LENGTH_BYTES);
  bytes.set(record.content, RECORD_HEAD_BYTES + PATH_LENGTH_BYTES + pathBytes.byteLength);
  bytes.writeUInt32LE(recordChecksum(bytes.subarray(4, 8), [bytes.subarray(RECORD_HEAD_BYTES)]), 8);
  return bytes;
}

/**
 * The complete records of `epoch` from RECORDS_START on, in order, up to the first one that is
 * not (torn, of another epoch, never written); `end` is where that one begins.
 */
export function decodeRecords(journal: Uint8Array, epoch: number): { readonly records: JournalRecord[]; readonly end: number } {
  const bytes = Buffer.from(journal.buffer, journal.byteOffset, journal.byteLength);
  const records: JournalRecord[] = [];
  let offset = RECORDS_START;
  while (offset + RECORD_HEAD_BYTES <= bytes.byteLength) {
    const payloadBytes = bytes.readUInt32LE(offset);
    const payloadStart = offset + RECORD_HEAD_BYTES;
    const payloadEnd = payloadStart + payloadBytes;
    if (payloadBytes < PATH_LENGTH_BYTES || payloadEnd > bytes.byteLength || bytes.readUInt32LE(offset + 4) !== epoch) {
      break;
    }
    const payload = bytes.subarray(payloadStart, payloadEnd);
    if (recordChecksum(bytes.subarray(offset + 4, offset + 8), [payload]) !== bytes.readUInt32LE(offset + 8)) {
      break;
    }
    const pathBytes = payload.readUInt16LE(0);
    if (PATH_LENGTH_BYTES + pathBytes > payload.byteLength) {
      break;
    }
    records.push({
      relativePath: payload.toString("utf8", PATH_LENGTH_BYTES, PATH_LENGTH_BYTES + pathBytes),
      content: Uint8Array.prototype.slice.call(payload, PATH_LENGTH_BYTES + pathBytes),
    });
    offset = payloadEnd;
  }
  return { records, end: offset };
}
