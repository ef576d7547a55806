import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** V8's gc() options; flavor "last-resort" (major only) also compacts the heap and gives its free pages back. */
export type CollectGarbage = (options?: { type: "major" | "minor"; execution: "sync"; flavor?: "regular" | "last-resort" }) => void;

/**
 * V8's gc(), which Node exposes only with --expose-gc: the flag can be set at run time and the
 * function read from a new context. Throws where the runtime refuses.
 */
export function exposeGc(): CollectGarbage {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as CollectGarbage;
}
