export { Code } from "./code.js";
export { RegistryError, invalidArgument, isNotFound, notFound, resourceExhausted } from "./registry-error.js";
