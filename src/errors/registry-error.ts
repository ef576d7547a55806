import { Code } from "./code.js";

/** The one error type of the registry core: a gRPC status code and a message meant for the client. */
export class RegistryError extends Error {
  override readonly name = "RegistryError";

  constructor(
    readonly code: Code,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** Wraps anything caught into a RegistryError; unknown failures become INTERNAL. */
  static from(reason: unknown): RegistryError {
    if (reason instanceof RegistryError) {
      return reason;
    }
    const detail = reason instanceof Error ? reason.message : String(reason);
    return new RegistryError(Code.INTERNAL, `internal error: ${detail}`, { cause: reason });
  }
}

export const invalidArgument = (message: string): RegistryError => new RegistryError(Code.INVALID_ARGUMENT, message);
export const notFound = (message: string): RegistryError => new RegistryError(Code.NOT_FOUND, message);
/** Whether `error` is the registry's NOT_FOUND (a model or version that is not there). */
export const isNotFound = (error: unknown): error is RegistryError => error instanceof RegistryError && error.code === Code.NOT_FOUND;
export const resourceExhausted = (message: string): RegistryError =>
  new RegistryError(Code.RESOURCE_EXHAUSTED, message);
