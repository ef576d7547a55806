/**
 * Compares strings by Unicode code point, which is also the byte order of their UTF-8 (Go's string
 * order, the original server's). JavaScript's default sort compares UTF-16 code units instead, which
 * puts U+10000 and above (emoji, ...) before U+E000 to U+FFFF.
 */
export function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) {
      return codePointRank(x) - codePointRank(y);
    }
  }
  return a.length - b.length;
}

/**
 * Surrogates (U+D800 to U+DFFF, the halves of code points from U+10000) move above U+E000 to U+FFFF;
 * every other code unit keeps its place. At the first difference this orders the code points.
 */
function codePointRank(codeUnit: number): number {
  if (codeUnit >= 0xe000) {
    return codeUnit - 0x800;
  }
  if (codeUnit >= 0xd800) {
    return codeUnit + 0x2000;
  }
  return codeUnit;
}
