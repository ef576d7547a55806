import path from "node:path";

/** The archive directory written by the original Go server (see test/fixtures/README.md); copy it before writing. */
export const ORIGINAL_ARCHIVE = path.resolve(import.meta.dirname, "../../../test/fixtures/original-archive");
