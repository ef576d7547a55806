export { createInProcessRegistryState, type InProcessRegistryStateOptions } from "./in-process-registry-state.js";
export type { RegistryState, VersionNumberClaim } from "./registry-state.js";
