export {
  type ChunkLayout,
  chunkDataLength,
  chunkDataOffset,
  chunkFrameOffset,
  chunkHeaderLength,
  encodeFrameHeader,
  frameHeaderLength,
  GRPC_FRAME_PREFIX_LENGTH,
  planChunkLayout,
} from "./chunk-layout.js";
export { EncodedVersionData } from "./encoded-version-data.js";
export { type Sha256Base64, type Sha256Implementation, SHA256_IMPLEMENTATIONS, createSha256 } from "./sha256.js";
