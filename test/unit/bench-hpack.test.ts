import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type HeaderField, HpackDecoder, HpackRequestEncoder, decodeHuffman, encodeLiteralHeaderBlock } from "../../bench/load/hpack-decoder.js";

const hex = (text: string): Buffer => Buffer.from(text.replaceAll(" ", ""), "hex");

describe("bench: the raw reader's HPACK decoder (hpack-decoder.ts)", () => {
  test("Huffman strings of RFC 7541 appendix C", () => {
    assert.equal(decodeHuffman(hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff")).toString("latin1"), "www.example.com");
    assert.equal(decodeHuffman(hex("a8eb 1064 9cbf")).toString("latin1"), "no-cache");
    assert.equal(decodeHuffman(hex("25a8 49e9 5ba9 7d7f")).toString("latin1"), "custom-key");
    assert.equal(decodeHuffman(hex("25a8 49e9 5bb8 e8b4 bf")).toString("latin1"), "custom-value");
  });

  test("padding that is not a prefix of EOS, or longer than 7 bits, is refused", () => {
    // "0" is the 5-bit code 00000: one byte with 3 bits of padding.
    assert.equal(decodeHuffman(hex("07")).toString("latin1"), "0");
    assert.throws(() => decodeHuffman(hex("00")), /^Error: HPACK: invalid Huffman padding$/);
    assert.throws(() => decodeHuffman(hex("07 ff")), /^Error: HPACK: invalid Huffman padding$/);
  });

  test("the requests of RFC 7541 C.4, one decoder (its dynamic table carries over)", () => {
    const decoder = new HpackDecoder();
    assert.deepEqual(decoder.decode(hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")), [
      [":method", "GET"],
      [":scheme", "http"],
      [":path", "/"],
      [":authority", "www.example.com"],
    ]);
    assert.deepEqual(decoder.decode(hex("8286 84be 5886 a8eb 1064 9cbf")), [
      [":method", "GET"],
      [":scheme", "http"],
      [":path", "/"],
      [":authority", "www.example.com"],
      ["cache-control", "no-cache"],
    ]);
    assert.deepEqual(decoder.decode(hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf")), [
      [":method", "GET"],
      [":scheme", "https"],
      [":path", "/index.html"],
      [":authority", "www.example.com"],
      ["custom-key", "custom-value"],
    ]);
  });

  test("an index past the tables is refused", () => {
    assert.throws(() => new HpackDecoder().decode(hex("be")), /^Error: HPACK: no header table entry 62$/);
  });

  test("the literal block the reader sends decodes to its fields, long names and values included", () => {
    const fields = [
      [":path", "/cogmentAPI.ModelRegistrySP/RetrieveVersionData"],
      ["x-long", "v".repeat(300)],
      ["te", "trailers"],
    ] as const;
    const block = encodeLiteralHeaderBlock(fields);
    assert.equal(block[0], 0x00, "literal without indexing, new name");
    assert.deepEqual(new HpackDecoder().decode(block), fields);
  });

  test("the request encoder: a field's first use is indexed, later uses are one byte each", () => {
    const fields: HeaderField[] = [
      [":method", "POST"],
      [":scheme", "http"],
      [":path", "/cogmentAPI.ModelRegistrySP/RetrieveVersionInfos"],
      [":authority", "127.0.0.1:9000"],
      ["content-type", "application/grpc"],
      ["te", "trailers"],
    ];
    const encoder = new HpackRequestEncoder();
    const decoder = new HpackDecoder();
    const first = encoder.encode(fields);
    assert.equal(first[0], 0x40, "literal with incremental indexing, new name");
    assert.deepEqual(decoder.decode(first), fields);
    // Six entries: the oldest (:method) is 61 + 6 = 67, the newest (te) 62.
    const second = encoder.encode(fields);
    assert.deepEqual(second, Buffer.from([0x80 | 67, 0x80 | 66, 0x80 | 65, 0x80 | 64, 0x80 | 63, 0x80 | 62]));
    assert.deepEqual(decoder.decode(second), fields);
    // A new field shifts the older entries' indices by one.
    const third = encoder.encode([[":path", "/cogmentAPI.ModelRegistrySP/CreateVersion"], [":method", "POST"]]);
    assert.equal(third[0], 0x40);
    assert.equal(third.at(-1), 0x80 | 68);
    assert.deepEqual(decoder.decode(third), [[":path", "/cogmentAPI.ModelRegistrySP/CreateVersion"], [":method", "POST"]]);
  });

  test("the request encoder keeps within its table budget: later fields go unindexed, and the indices stay right", () => {
    // Entry sizes: name + value + 32 bytes (RFC 7541 4.1): 1 + 10 + 32 = 43 each.
    const encoder = new HpackRequestEncoder(100);
    const decoder = new HpackDecoder();
    const fields: HeaderField[] = [["a", "0123456789"], ["b", "0123456789"], ["c", "0123456789"]];
    const first = encoder.encode(fields);
    assert.deepEqual([first[0], first[14], first[28]], [0x40, 0x40, 0x00]);
    assert.deepEqual(decoder.decode(first), fields);
    const second = encoder.encode(fields);
    assert.deepEqual(second.subarray(0, 2), Buffer.from([0x80 | 63, 0x80 | 62]));
    assert.equal(second[2], 0x00);
    assert.deepEqual(decoder.decode(second), fields);
  });
});
