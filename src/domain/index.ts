export type { ModelRecord, VersionRecord } from "./records.js";
