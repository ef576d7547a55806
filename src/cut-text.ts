/**
 * Text quoted in messages and logs, cut short or made safe without ever leaving half of a character:
 * a lone UTF-16 surrogate in a gRPC status message makes grpc-js's encodeURI of the grpc-message
 * trailer throw, and the call then never ends.
 */

/** The first `maxUnits` UTF-16 units of `text`, one fewer where the cut would split a surrogate pair. */
export function cutText(text: string, maxUnits: number): string {
  if (text.length <= maxUnits) {
    return text;
  }
  const last = text.charCodeAt(maxUnits - 1);
  const isHighSurrogate = last >= 0xd800 && last <= 0xdbff;
  return text.slice(0, isHighSurrogate ? maxUnits - 1 : maxUnits);
}

/** `text` with any lone surrogate replaced by U+FFFD, as it would be sent over the wire as UTF-8. */
export function wellFormed(text: string): string {
  return text.isWellFormed() ? text : text.toWellFormed();
}
