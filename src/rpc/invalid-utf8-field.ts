import { isUtf8 } from "node:buffer";
import { type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

/**
 * The path of the first string field of `bytes` (a `desc` message) that is not valid UTF-8, e.g.
 * "model_info.model_id" or "model_info.user_data[\"key\"]" (a map value; a bad key is named by its
 * position, "model_info.user_data key #2"); undefined if none is, or the bytes do not parse. For
 * the message of a request that failed to decode, only then: protobuf-es's own error names no field.
 */
export function invalidUtf8Field(desc: DescMessage, bytes: Uint8Array): string | undefined {
  try {
    return findIn(desc, bytes, "");
  } catch {
    return undefined;
  }
}

function findIn(desc: DescMessage, bytes: Uint8Array, prefix: string): string | undefined {
  const reader = new BinaryReader(bytes);
  const mapEntries = new Map<number, number>();
  while (reader.pos < reader.len) {
    const [number, wireType] = reader.tag();
    const field = desc.fields.find((candidate) => candidate.number === number);
    if (field === undefined || wireType !== WireType.LengthDelimited) {
      reader.skip(wireType, number);
      continue;
    }
    const value = reader.bytes();
    const found = inField(field, value, `${prefix}${field.name}`, mapEntries);
    if (found !== undefined) {
      return found;
    }
  }
  return undefined;
}

function inField(field: DescField, value: Uint8Array, path: string, mapEntries: Map<number, number>): string | undefined {
  switch (field.fieldKind) {
    case "scalar":
      return field.scalar === ScalarType.STRING && !isUtf8(value) ? path : undefined;
    case "list":
      if (field.listKind === "message") {
        return findIn(field.message, value, `${path}.`);
      }
      return field.listKind === "scalar" && field.scalar === ScalarType.STRING && !isUtf8(value) ? path : undefined;
    case "message":
      return findIn(field.message, value, `${path}.`);
    case "map": {
      const entry = (mapEntries.get(field.number) ?? 0) + 1;
      mapEntries.set(field.number, entry);
      return inMapEntry(field, value, path, entry);
    }
    default:
      return undefined;
  }
}

/** A map entry: key = 1, value = 2. */
function inMapEntry(field: DescField & { fieldKind: "map" }, bytes: Uint8Array, path: string, entry: number): string | undefined {
  const reader = new BinaryReader(bytes);
  let key: string | undefined;
  while (reader.pos < reader.len) {
    const [number, wireType] = reader.tag();
    if (wireType !== WireType.LengthDelimited) {
      reader.skip(wireType, number);
      continue;
    }
    const value = reader.bytes();
    if (number === 1 && field.mapKey === ScalarType.STRING) {
      if (!isUtf8(value)) {
        return `${path} key #${entry}`;
      }
      key = Buffer.from(value).toString("utf8");
    } else if (number === 2) {
      const valuePath = `${path}[${JSON.stringify(key ?? "")}]`;
      if (field.mapKind === "scalar" && field.scalar === ScalarType.STRING && !isUtf8(value)) {
        return valuePath;
      }
      if (field.mapKind === "message") {
        const found = findIn(field.message, value, `${valuePath}.`);
        if (found !== undefined) {
          return found;
        }
      }
    }
  }
  return undefined;
}
