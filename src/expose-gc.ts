/** V8's gc() options; flavor "last-resort" (major only) also compacts the heap and gives its free pages back. */
export type CollectGarbage = (options?: { type: "major" | "minor"; execution: "sync"; flavor?: "regular" | "last-resort" }) => void;

/**
 * V8's gc(), which Node exposes only with --expose-gc: the flag can be set at run time and the
 * function read from a new context. Throws where the runtime refuses.
 */
export function exposeGc(): CollectGarbage {
  // Taken when called (after the start), not imported: node:v8 loads some 30 built-in modules
  // that a start does not otherwise need (issue #15, start-up).
  process.getBuiltinModule("node:v8").setFlagsFromString("--expose-gc");
  return process.getBuiltinModule("node:vm").runInNewContext("gc") as CollectGarbage;
}
