import { type DescFile, createFileRegistry } from "@bufbuild/protobuf";
import type { FileDescriptorProto } from "@bufbuild/protobuf/wkt";

/** A descriptor message as scripts/embed-descriptors.mjs writes it: its type name and its set fields. */
export interface EmbeddedMessage {
  readonly $typeName: string;
  readonly [field: string]: unknown;
}

/**
 * The file descriptor of src/gen/…_pb.ts from the object literal scripts/embed-descriptors.mjs
 * wrote at build time, instead of protoc-gen-es's `fileDesc(base64)`: no decoding, so no boot of
 * descriptor.proto's own descriptors at start (issue #15). Each message object gets back what
 * protobuf-es's would have: set fields as own properties, the others' defaults from a prototype
 * (`defaults`, by type), so the registry sees the same descriptor.
 */
export function embeddedFileDesc(
  tree: EmbeddedMessage,
  defaults: Readonly<Record<string, Readonly<Record<string, unknown>>>>,
  imports?: readonly DescFile[],
): DescFile {
  const prototypes = new Map<string, object>();
  const hydrate = (value: unknown): unknown => {
    if (Array.isArray(value)) {
      return value.map(hydrate);
    }
    if (typeof value !== "object" || value === null) {
      return value;
    }
    const typeName = (value as Partial<EmbeddedMessage>).$typeName;
    let prototype: object | undefined;
    if (typeof typeName === "string") {
      prototype = prototypes.get(typeName);
      if (prototype === undefined) {
        prototype = hydrate(defaults[typeName] ?? {}) as object;
        prototypes.set(typeName, prototype);
      }
    }
    const message: Record<string, unknown> = prototype === undefined ? {} : Object.create(prototype);
    for (const [key, field] of Object.entries(value)) {
      message[key] = hydrate(field);
    }
    return message;
  };
  const root = hydrate(tree) as FileDescriptorProto;
  root.dependency = imports?.map((file) => file.proto.name) ?? [];
  const file = createFileRegistry(root, (name) => imports?.find((dependency) => dependency.proto.name === name)).getFile(root.name);
  if (file === undefined) {
    throw new Error(`embedded file descriptor ${root.name} did not register`);
  }
  return file;
}
