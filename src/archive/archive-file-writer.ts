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
  /**
   * Set where several instances share the archive: both files are only written and flushed under
   * these temporary names (which must not exist), and left there for the caller to put in place
   * (fenced-placement.ts); on failure neither is left behind.
   */
  readonly stageAt?: { readonly dataTempPath: string; readonly infoTempPath: string };
}

/** A version whose data was streamed to a temporary file (see writeChunksAt), put in place with its info. */
export interface StreamedVersionCommit {
  /** The temporary file the data was streamed into (see writeChunksAt). */
  readonly tempDataPath: string;
  readonly dataPath: string;
  readonly infoPath: string;
  readonly infoText: string;
  /**
   * Set where several instances share the archive: the data is flushed and the info written and
   * flushed under this temporary name, and nothing is renamed (the caller puts both in place,
   * fenced-placement.ts); on failure both temporary files are removed.
   */
  readonly stageInfoAt?: string;
}
