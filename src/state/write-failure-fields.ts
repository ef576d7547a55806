/**
 * The log fields of a failed archive write: its errno when the error carries one (`ENOSPC`,
 * `EROFS`…), and its message.
 */
export function writeFailureFields(error: unknown): { readonly errno: string | undefined; readonly error: string } {
  const errno = (error as { code?: unknown } | null)?.code;
  return {
    errno: typeof errno === "string" ? errno : undefined,
    error: error instanceof Error ? error.message : String(error),
  };
}
