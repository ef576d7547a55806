export { Code } from "./code.js";
export { RegistryError, invalidArgument, notFound, resourceExhausted } from "./registry-error.js";
