/**
 * Where the file system archive's writes happen: in production a worker pool running
 * atomic-write.ts, in tests and tools the calling thread (`inlineFileWriter`). The task types are
 * structured-clone friendly: they cross to worker threads as they are.
 */
export interface ArchiveFileWriter {
  /** For small files only (a model's info, metadata): the worker pool runs these before queued version writes. */
  writeFileAtomic(finalPath: string, content: string | readonly Uint8Array[]): Promise<void>;
  writeVersionFilesAtomic(request: VersionFilesWrite): Promise<void>;
  writeChunksAt(filePath: string, chunks: readonly Uint8Array[], position: number): Promise<void>;
  commitStreamedVersion(request: StreamedVersionCommit): Promise<void>;
}

/** A whole version at once: data and info files, info renamed into place last. */
export interface VersionFilesWrite {
  readonly dataPath: string;
  readonly dataChunks: readonly Uint8Array[];
  readonly infoPath: string;
  readonly infoText: string;
}

/** A version whose data was streamed to a temporary file (see writeChunksAt), put in place with its info. */
export interface StreamedVersionCommit {
  /** The temporary file the data was streamed into (see writeChunksAt). */
  readonly tempDataPath: string;
  readonly dataPath: string;
  readonly infoPath: string;
  readonly infoText: string;
}
