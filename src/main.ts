#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --single-threaded-gc --max-semi-space-size=8
import { enableCompileCache } from "node:module";

// Start-up is mostly compiling our dependencies' JavaScript: cache the compiled code in the OS temp
// directory (Node's default place for it), so every start after the first skips most of that.
enableCompileCache();
await import("./run-server.js");
