/**
 * Listing replies stay under the 4 MiB that stock gRPC clients accept: items
 * that would push a reply past the limit are left for the next page. At least
 * one item is always returned, so paging makes progress (one item is bounded
 * by the user_data limit).
 */
export const MAX_LISTING_REPLY_BYTES = 4 * 1024 * 1024 - 64 * 1024;

interface SizedItem {
  readonly modelId: string;
  readonly userData: Readonly<Record<string, string>>;
  readonly dataHash?: string;
}

/** An upper bound of the encoded size of a ModelInfo or ModelVersionInfo inside a reply. */
export function estimateEncodedSize(item: SizedItem): number {
  let size = 64 + Buffer.byteLength(item.modelId) + (item.dataHash === undefined ? 0 : Buffer.byteLength(item.dataHash));
  for (const [key, value] of Object.entries(item.userData)) {
    size += 12 + Buffer.byteLength(key) + Buffer.byteLength(value);
  }
  return size;
}

export function limitReplySize<T extends SizedItem>(items: readonly T[], limit = MAX_LISTING_REPLY_BYTES): readonly T[] {
  if (items.length <= 1) {
    return items; // the first item is always returned (RetrieveVersionInfos([-1]) asks for one)
  }
  let bytes = 0;
  for (let index = 0; index < items.length; index++) {
    bytes += estimateEncodedSize(items[index] as T);
    if (index > 0 && bytes > limit) {
      return items.slice(0, index);
    }
  }
  return items;
}
