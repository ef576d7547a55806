/**
 * Run by `npm run generate` after `buf generate` (issue #15, start-up). protoc-gen-es embeds each
 * file descriptor as a serialized google.protobuf.FileDescriptorProto (`fileDesc("<base64>")`),
 * whose decoding needs descriptor.proto's own descriptors booted first: at every start, the boot and
 * the reflective decoding cost more than everything else the server evaluates before listening
 * (profiled, docs/performance.md). This rewrites each `fileDesc(...)` of src/gen into
 * `embeddedFileDesc(<the same FileDescriptorProto as an object literal>, <defaults>, deps)`
 * (src/rpc/embedded-file-desc.ts), decoded here, once, at build time. The serialized form stays
 * exported as `<name>_serialized` (dropped from the bundle, unused): the tests check that both give
 * the same descriptors.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { fromBinary } from "@bufbuild/protobuf";
import { protoCamelCase } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { base64Decode } from "@bufbuild/protobuf/wire";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const GEN_DIR = path.join(ROOT, "src", "gen");
const RUNTIME = path.join(ROOT, "src", "rpc", "embedded-file-desc.js");

function restoreJsonNames(message) {
  for (const field of message.field) {
    if (!Object.prototype.hasOwnProperty.call(field, "jsonName") || field.jsonName === undefined) {
      field.jsonName = protoCamelCase(field.name);
    }
  }
  message.nestedType.forEach(restoreJsonNames);
}

/** The message tree as plain data: own (set) fields only; each type's defaults (its prototype's) in `defaults`. */
function plain(value, defaults) {
  if (Array.isArray(value)) {
    return value.map((item) => plain(item, defaults));
  }
  if (typeof value === "bigint" || value instanceof Uint8Array) {
    throw new Error(`a descriptor field holds a ${typeof value}: not embeddable as JSON`);
  }
  if (typeof value !== "object" || value === null) {
    return value;
  }
  const typeName = value.$typeName;
  if (typeof typeName === "string" && !(typeName in defaults)) {
    const prototype = Object.getPrototypeOf(value);
    defaults[typeName] = prototype === Object.prototype || prototype === null ? {} : plain({ ...prototype }, defaults);
  }
  const out = {};
  for (const [key, field] of Object.entries(value)) {
    if (field !== undefined) {
      out[key] = plain(field, defaults);
    }
  }
  return out;
}

function genFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? genFiles(path.join(dir, entry.name)) : entry.name.endsWith("_pb.ts") ? [path.join(dir, entry.name)] : [],
  );
}

const CALL = /export const (\w+): GenFile = \/\*@__PURE__\*\/\n {2}fileDesc\("([A-Za-z0-9+/=_-]+)"(, \[[\w, ]*\])?\);/;
for (const file of genFiles(GEN_DIR)) {
  let text = readFileSync(file, "utf8");
  const match = CALL.exec(text);
  if (match === null) {
    throw new Error(`${file}: no fileDesc("<base64>") call in the form this script knows`);
  }
  const [call, name, base64, deps] = match;
  const root = fromBinary(FileDescriptorProtoSchema, base64Decode(base64));
  root.messageType.forEach(restoreJsonNames);
  const defaults = {};
  const tree = plain(root, defaults);
  let runtime = path.relative(path.dirname(file), RUNTIME).split(path.sep).join("/");
  if (!runtime.startsWith(".")) {
    runtime = `./${runtime}`;
  }
  text = text.replace(
    call,
    `export const ${name}: GenFile = /*@__PURE__*/\n  embeddedFileDesc(${JSON.stringify(tree)}, ${JSON.stringify(defaults)}${deps ?? ""});\n\n` +
      `/** The same file descriptor, serialized as protoc-gen-es embeds it (tests compare the two). */\nexport const ${name}_serialized = ${JSON.stringify(base64)};`,
  );
  text = text.replace(/import \{ ([^}]*)\bfileDesc, ([^}]*)\} from "@bufbuild\/protobuf\/codegenv2";/, 'import { $1$2} from "@bufbuild/protobuf/codegenv2";');
  text = text.replace(/import \{ fileDesc \} from "@bufbuild\/protobuf\/codegenv2";\n/, "");
  if (/\bfileDesc\(/.test(text)) {
    throw new Error(`${file}: a fileDesc call is left`);
  }
  text = text.replace(/(import type \{[^}]*\} from "@bufbuild\/protobuf\/codegenv2";\n)/, `$1import { embeddedFileDesc } from "${runtime}";\n`);
  writeFileSync(file, text);
  console.log(`embedded descriptors: ${path.relative(ROOT, file)}`);
}
