/** `text` escaped for use inside a RegExp. */
export function literally(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** A RegExp matching exactly `text` (a message asserted in full with rejectsWithStatus). */
export function exactly(text: string): RegExp {
  return new RegExp(`^${literally(text)}$`);
}
