export { createInProcessRegistryState, type InProcessRegistryStateOptions } from "./in-process-registry-state.js";
export type { LostVersions, RegistryState, TransientDataSink, TransientDataSource, VersionNumberClaim } from "./registry-state.js";
