/*
 * Redis Cluster's key → hash slot mapping (CRC16-XMODEM of the key, or of its hash tag, mod 16384),
 * as CLUSTER KEYSLOT computes it: the chunk connections route each key to the node serving its slot.
 */

export const CLUSTER_SLOTS = 16384;

const TABLE = new Uint16Array(256);
for (let byte = 0; byte < 256; byte++) {
  let crc = byte << 8;
  for (let bit = 0; bit < 8; bit++) {
    crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  TABLE[byte] = crc;
}

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) {
    crc = ((crc << 8) & 0xffff) ^ (TABLE[((crc >> 8) ^ byte) & 0xff] as number);
  }
  return crc;
}

/** The slot of `key`: only what lies between the first `{` and the next `}` counts, when that is not empty. */
export function keySlot(key: string): number {
  const bytes = Buffer.from(key, "utf8");
  const open = bytes.indexOf(0x7b);
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) {
      return crc16(bytes.subarray(open + 1, close)) % CLUSTER_SLOTS;
    }
  }
  return crc16(bytes) % CLUSTER_SLOTS;
}

const probeKeys = new Map<number, string>();

/** A key (never written) that hashes to `slot`: what the health probe of the node serving it asks about. */
export function probeKeyForSlot(slot: number): string {
  let key = probeKeys.get(slot);
  for (let i = 0; key === undefined; i++) {
    const candidate = `cmr-probe:{${i}}`;
    if (keySlot(candidate) === slot) {
      key = candidate;
    }
  }
  probeKeys.set(slot, key);
  return key;
}
