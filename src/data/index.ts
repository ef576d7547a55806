export {
  type ChunkLayout,
  chunkDataLength,
  chunkDataOffset,
  chunkHeaderLength,
  chunkMessageOffset,
  encodeChunkHeader,
  planChunkLayout,
} from "./chunk-layout.js";
export { EncodedVersionData } from "./encoded-version-data.js";
export { type Sha256Base64, type Sha256Implementation, SHA256_IMPLEMENTATIONS, createSha256 } from "./sha256.js";
