export type { ModelRecord, VersionRecord } from "./records.js";
export { EMPTY_USER_DATA } from "./records.js";
export { findVersion, lowerBound } from "./version-order.js";
