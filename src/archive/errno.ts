/** What the archive backends read from a caught error. */

/** The `code` of a Node system error (`ENOENT`, `EPERM`…), or undefined for any other value. */
export function errorCode(error: unknown): string | undefined {
  if (error instanceof Error && "code" in error && typeof error.code === "string") {
    return error.code;
  }
  return undefined;
}

/** Whether a file system call failed because the path (or one of its directories) does not exist. */
export function isMissing(error: unknown): boolean {
  const code = errorCode(error);
  return code === "ENOENT" || code === "ENOTDIR";
}

export const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error));
