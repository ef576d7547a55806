/**
 * HPACK (RFC 7541) for the bench's raw HTTP/2 client: a decoder enough to read a gRPC server's
 * response headers and trailers (indexed fields, literals, the dynamic table, Huffman-coded strings),
 * and the request side's encoder. Header blocks are a few per call, so clarity wins over speed here.
 */

/** RFC 7541 Appendix A. */
const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"],
  ["accept-language", ""],
  ["accept-ranges", ""],
  ["accept", ""],
  ["access-control-allow-origin", ""],
  ["age", ""],
  ["allow", ""],
  ["authorization", ""],
  ["cache-control", ""],
  ["content-disposition", ""],
  ["content-encoding", ""],
  ["content-language", ""],
  ["content-length", ""],
  ["content-location", ""],
  ["content-range", ""],
  ["content-type", ""],
  ["cookie", ""],
  ["date", ""],
  ["etag", ""],
  ["expect", ""],
  ["expires", ""],
  ["from", ""],
  ["host", ""],
  ["if-match", ""],
  ["if-modified-since", ""],
  ["if-none-match", ""],
  ["if-range", ""],
  ["if-unmodified-since", ""],
  ["last-modified", ""],
  ["link", ""],
  ["location", ""],
  ["max-forwards", ""],
  ["proxy-authenticate", ""],
  ["proxy-authorization", ""],
  ["range", ""],
  ["referer", ""],
  ["refresh", ""],
  ["retry-after", ""],
  ["server", ""],
  ["set-cookie", ""],
  ["strict-transport-security", ""],
  ["transfer-encoding", ""],
  ["user-agent", ""],
  ["vary", ""],
  ["via", ""],
  ["www-authenticate", ""],
];

/**
 * Bit length of each symbol's Huffman code (RFC 7541 Appendix B; symbol 256 is EOS). The code is
 * canonical: codes follow from the lengths alone (shorter first, then by symbol).
 */
// prettier-ignore
const HUFFMAN_CODE_LENGTHS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];

const EOS = 256;
const ENTRY_OVERHEAD = 32;

/** The Huffman decoding trie: node n's children are at [2n] (bit 0) and [2n + 1] (bit 1); a leaf is -(symbol + 1). */
const HUFFMAN_TRIE = buildHuffmanTrie();

function buildHuffmanTrie(): Int32Array {
  const symbols = HUFFMAN_CODE_LENGTHS.map((length, symbol) => ({ symbol, length })).sort((a, b) => a.length - b.length || a.symbol - b.symbol);
  const trie = new Int32Array(2 * 2 * symbols.length).fill(0);
  let nodes = 1;
  let code = 0;
  let previousLength = symbols[0]?.length ?? 0;
  for (const { symbol, length } of symbols) {
    code *= 2 ** (length - previousLength);
    previousLength = length;
    let node = 0;
    for (let bit = length - 1; bit >= 0; bit--) {
      const slot = 2 * node + (Math.floor(code / 2 ** bit) % 2);
      if (bit === 0) {
        trie[slot] = -(symbol + 1);
      } else {
        if (trie[slot] === 0) {
          trie[slot] = nodes++;
        }
        node = trie[slot] as number;
      }
    }
    code += 1;
  }
  return trie;
}

export function decodeHuffman(bytes: Uint8Array): Buffer {
  const out: number[] = [];
  let node = 0;
  let depth = 0;
  let allOnes = true;
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      const one = (byte >> bit) & 1;
      const next = HUFFMAN_TRIE[2 * node + one] as number;
      allOnes &&= one === 1;
      depth += 1;
      if (next < 0) {
        const symbol = -next - 1;
        if (symbol === EOS) {
          throw new Error("HPACK: EOS inside a Huffman string");
        }
        out.push(symbol);
        node = 0;
        depth = 0;
        allOnes = true;
      } else if (next === 0) {
        throw new Error("HPACK: invalid Huffman code");
      } else {
        node = next;
      }
    }
  }
  if (depth > 7 || !allOnes) {
    throw new Error("HPACK: invalid Huffman padding");
  }
  return Buffer.from(out);
}

export type HeaderField = readonly [name: string, value: string];

/** One connection's decoding context (the dynamic table lives across header blocks). */
export class HpackDecoder {
  /** Newest first. */
  private readonly dynamic: HeaderField[] = [];
  private dynamicSize = 0;

  constructor(private maxTableSize = 4096) {}

  decode(block: Uint8Array): HeaderField[] {
    const fields: HeaderField[] = [];
    const cursor = { block, offset: 0 };
    while (cursor.offset < block.byteLength) {
      const first = block[cursor.offset] as number;
      if (first & 0x80) {
        fields.push(this.field(readInteger(cursor, 7)));
      } else if ((first & 0xc0) === 0x40) {
        const field = this.literal(cursor, 6);
        this.add(field);
        fields.push(field);
      } else if ((first & 0xe0) === 0x20) {
        this.maxTableSize = readInteger(cursor, 5);
        this.evict();
      } else {
        fields.push(this.literal(cursor, 4)); // without indexing (0000) or never indexed (0001)
      }
    }
    return fields;
  }

  private literal(cursor: Cursor, prefixBits: number): HeaderField {
    const index = readInteger(cursor, prefixBits);
    const name = index === 0 ? readString(cursor) : this.field(index)[0];
    return [name, readString(cursor)];
  }

  private field(index: number): HeaderField {
    const field = index <= STATIC_TABLE.length ? STATIC_TABLE[index - 1] : this.dynamic[index - STATIC_TABLE.length - 1];
    if (index === 0 || field === undefined) {
      throw new Error(`HPACK: no header table entry ${index}`);
    }
    return field;
  }

  private add(field: HeaderField): void {
    this.dynamic.unshift(field);
    this.dynamicSize += entrySize(field);
    this.evict();
  }

  private evict(): void {
    while (this.dynamicSize > this.maxTableSize) {
      const oldest = this.dynamic.pop();
      if (oldest === undefined) {
        break;
      }
      this.dynamicSize -= entrySize(oldest);
    }
  }
}

interface Cursor {
  readonly block: Uint8Array;
  offset: number;
}

function entrySize([name, value]: HeaderField): number {
  return Buffer.byteLength(name, "latin1") + Buffer.byteLength(value, "latin1") + ENTRY_OVERHEAD;
}

function readInteger(cursor: Cursor, prefixBits: number): number {
  const max = (1 << prefixBits) - 1;
  let value = (cursor.block[cursor.offset++] as number) & max;
  if (value < max) {
    return value;
  }
  let scale = 1;
  for (;;) {
    const byte = cursor.block[cursor.offset++];
    if (byte === undefined) {
      throw new Error("HPACK: integer cut short");
    }
    value += (byte & 0x7f) * scale;
    scale *= 128;
    if ((byte & 0x80) === 0) {
      return value;
    }
    if (scale > 2 ** 35) {
      throw new Error("HPACK: integer too large");
    }
  }
}

function readString(cursor: Cursor): string {
  const huffman = ((cursor.block[cursor.offset] ?? 0) & 0x80) !== 0;
  const length = readInteger(cursor, 7);
  if (cursor.offset + length > cursor.block.byteLength) {
    throw new Error("HPACK: string cut short");
  }
  const raw = cursor.block.subarray(cursor.offset, cursor.offset + length);
  cursor.offset += length;
  return (huffman ? decodeHuffman(raw) : Buffer.from(raw)).toString("latin1");
}

/** A header block of literal fields without indexing and without Huffman coding. */
export function encodeLiteralHeaderBlock(fields: readonly HeaderField[]): Buffer {
  const bytes: number[] = [];
  for (const [name, value] of fields) {
    bytes.push(0x00); // literal without indexing, new name
    writeString(bytes, name);
    writeString(bytes, value);
  }
  return Buffer.from(bytes);
}

/**
 * One connection's request header encoder, as HTTP/2 clients encode (grpc-go and nghttp2 alike): a
 * field's first use is a literal with incremental indexing, later uses are one-byte references to
 * the dynamic table, so the server decodes each call's headers from its table as it would a real
 * client's. No Huffman coding. Fields stop being added once the table holds `tableBudget` bytes
 * (never more than the peer's table, 4,096 bytes unless its SETTINGS lower it), so nothing is ever
 * evicted and the indices stay known.
 */
export class HpackRequestEncoder {
  /** Insertion ordinal of each field in the dynamic table, by `name\0value`. */
  private readonly inserted = new Map<string, number>();
  private tableBytes = 0;

  /** `tableBudget`: the most bytes of the peer's dynamic table used (RFC 7541 §4.1 sizes). */
  constructor(readonly tableBudget = 1024) {}

  encode(fields: readonly HeaderField[]): Buffer {
    const bytes: number[] = [];
    for (const field of fields) {
      const key = `${field[0]}\0${field[1]}`;
      const ordinal = this.inserted.get(key);
      if (ordinal !== undefined) {
        writeInteger(bytes, STATIC_TABLE.length + this.inserted.size - ordinal, 7, 0x80);
        continue;
      }
      const size = entrySize(field);
      if (this.tableBytes + size <= this.tableBudget) {
        bytes.push(0x40); // literal with incremental indexing, new name
        this.inserted.set(key, this.inserted.size);
        this.tableBytes += size;
      } else {
        bytes.push(0x00);
      }
      writeString(bytes, field[0]);
      writeString(bytes, field[1]);
    }
    return Buffer.from(bytes);
  }
}

function writeInteger(bytes: number[], value: number, prefixBits: number, flags: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    bytes.push(flags | value);
    return;
  }
  bytes.push(flags | max);
  let rest = value - max;
  while (rest >= 0x80) {
    bytes.push((rest % 128) | 0x80);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
}

function writeString(bytes: number[], text: string): void {
  const raw = Buffer.from(text, "latin1");
  writeInteger(bytes, raw.byteLength, 7, 0);
  bytes.push(...raw);
}
