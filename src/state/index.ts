export { createInProcessRegistryState, type InProcessRegistryStateOptions } from "./in-process-registry-state.js";
export type { RegistryState, TransientDataSink, VersionNumberClaim } from "./registry-state.js";
