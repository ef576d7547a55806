import { constants, mkdir, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import path from "node:path";
import { compareCodePoints } from "../code-point-order.js";
import { notFound } from "../errors/index.js";
import type { ModelRecord, VersionRecord } from "../domain/index.js";
import type { ArchiveStore, VersionDataReader } from "./archive-store.js";
import type { ArchiveFileWriter } from "./archive-file-writer.js";
import { syncDirectory } from "./atomic-write.js";
import {
  isTempFileName,
  metaFilePath,
  modelDirPath,
  modelInfoPath,
  parseVersionFileName,
  tempFileName,
  versionDataPath,
  versionInfoPath,
} from "./layout.js";
import { decodeModelInfo, decodeVersionInfo, encodeModelInfo, encodeVersionInfo } from "./yaml-codec.js";

export interface FsArchiveStoreOptions {
  readonly root: string;
  readonly writer: ArchiveFileWriter;
  readonly onWarning?: (message: string, details: Record<string, unknown>) => void;
}

interface SkippedVersion {
  readonly skipped: string;
  readonly details: Record<string, unknown>;
}

// Same permissions as the original server's directories.
const DIRECTORY_MODE = 0o750;

function errorCode(error: unknown): string | undefined {
  if (error instanceof Error && "code" in error && typeof error.code === "string") {
    return error.code;
  }
  return undefined;
}

function isMissing(error: unknown): boolean {
  const code = errorCode(error);
  return code === "ENOENT" || code === "ENOTDIR";
}

const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error));

async function readTextIfExists(filePath: string): Promise<string | undefined> {
  try {
    return await readFile(filePath, "utf8");
  } catch (error) {
    if (isMissing(error)) {
      return undefined;
    }
    throw error;
  }
}

async function readdirIfExists(directory: string): Promise<string[]> {
  try {
    return await readdir(directory);
  } catch (error) {
    if (isMissing(error)) {
      return [];
    }
    throw error;
  }
}

function createReader(handle: FileHandle, size: number, location: string): VersionDataReader {
  let closed: Promise<void> | undefined;
  return {
    size,
    location,
    async read(target, position) {
      const { bytesRead } = await handle.read(target, 0, target.byteLength, position);
      return bytesRead;
    },
    close() {
      closed ??= handle.close();
      return closed;
    },
  };
}

/** The original server's archive directory layout on the local filesystem. */
export function createFsArchiveStore(options: FsArchiveStoreOptions): ArchiveStore {
  const { root, writer } = options;
  const warn = options.onWarning ?? ((): void => {});

  // Start-up must not fail for one entry it cannot clean or read (a read-only
  // snapshot, a permission, a symlink loop): that entry is skipped with a warning.
  async function removeLeftover(entryPath: string): Promise<void> {
    try {
      await rm(entryPath, { recursive: true, force: true });
    } catch (error) {
      warn("could not remove a leftover temporary file of an interrupted write; it is ignored", {
        path: entryPath,
        error: errorMessage(error),
      });
      return;
    }
    warn("removed leftover temporary file of an interrupted write", { path: entryPath });
  }

  async function cleanModelDirectory(directory: string): Promise<void> {
    let names: string[];
    try {
      names = await readdirIfExists(directory);
    } catch (error) {
      warn("could not list a model directory to remove leftover temporary files", { path: directory, error: errorMessage(error) });
      return;
    }
    await Promise.all(names.filter(isTempFileName).map((name) => removeLeftover(path.join(directory, name))));
  }

  /** Whether `infoPath` is a model info file; an unreadable one is reported and treated as absent. */
  async function isModelInfoFile(infoPath: string): Promise<boolean> {
    try {
      return (await stat(infoPath)).isFile();
    } catch (error) {
      if (!isMissing(error)) {
        warn("model skipped: unreadable model info", { path: infoPath, error: errorMessage(error) });
      }
      return false;
    }
  }

  /** Loads one version, or says why it is skipped. */
  async function loadVersion(
    modelId: string,
    versionNumber: number,
    files: { info?: string; data?: string },
  ): Promise<VersionRecord | SkippedVersion> {
    const infoPath = versionInfoPath(root, modelId, versionNumber);
    const dataPath = versionDataPath(root, modelId, versionNumber);
    const skip = (reason: string, details: Record<string, unknown>): SkippedVersion => ({
      skipped: `archived version skipped: ${reason}`,
      details: { modelId, versionNumber, ...details },
    });
    if (files.info === undefined) {
      return skip("data file without version info", { path: dataPath });
    }
    if (files.data === undefined) {
      return skip("version info without data file", { path: infoPath });
    }
    let version: VersionRecord;
    try {
      version = decodeVersionInfo(await readFile(infoPath, "utf8"));
    } catch (error) {
      return skip("unreadable version info", { path: infoPath, error: errorMessage(error) });
    }
    if (version.modelId !== modelId || version.versionNumber !== versionNumber) {
      return skip("version info names another version", {
        path: infoPath,
        foundModelId: version.modelId,
        foundVersionNumber: version.versionNumber,
      });
    }
    let dataSize: number;
    try {
      const dataStat = await stat(dataPath);
      if (!dataStat.isFile()) {
        return skip("data path is not a file", { path: dataPath });
      }
      dataSize = dataStat.size;
    } catch (error) {
      return skip("unreadable data file", { path: dataPath, error: errorMessage(error) });
    }
    if (dataSize !== version.dataSize) {
      return skip("data file size differs from data_size", {
        path: dataPath,
        expectedSize: version.dataSize,
        actualSize: dataSize,
      });
    }
    return version;
  }

  return {
    async open() {
      await mkdir(root, { recursive: true, mode: DIRECTORY_MODE });
      const entries = await readdir(root, { withFileTypes: true });
      await Promise.all(
        entries.map(async (entry) => {
          const entryPath = path.join(root, entry.name);
          if (isTempFileName(entry.name)) {
            // Also what remains of a model whose deletion was interrupted.
            await removeLeftover(entryPath);
          } else if (entry.isDirectory() && !entry.name.startsWith(".")) {
            await cleanModelDirectory(entryPath);
          }
        }),
      );
    },

    async listModelIds() {
      const entries = await readdir(root, { withFileTypes: true }).catch((error: unknown) => {
        if (isMissing(error)) {
          return [];
        }
        throw error;
      });
      const candidates = entries.filter((entry) => entry.isDirectory() && !entry.name.startsWith("."));
      const found = await Promise.all(
        candidates.map(async ({ name }) => {
          let infoPath: string;
          try {
            infoPath = modelInfoPath(root, name);
          } catch {
            return undefined; // a directory name that can never be a model id
          }
          return (await isModelInfoFile(infoPath)) ? name : undefined;
        }),
      );
      return found.filter((name): name is string => name !== undefined).sort(compareCodePoints);
    },

    async readModel(modelId) {
      const infoPath = modelInfoPath(root, modelId);
      let model: ModelRecord;
      try {
        const text = await readTextIfExists(infoPath);
        if (text === undefined) {
          return undefined;
        }
        model = decodeModelInfo(text);
      } catch (error) {
        warn("model skipped: unreadable model info", { path: infoPath, error: errorMessage(error) });
        return undefined;
      }
      if (model.modelId !== modelId) {
        // The directory decides which model this is: it is how the model is found.
        warn("model info names another model id; using the directory name", {
          path: infoPath,
          foundModelId: model.modelId,
        });
        return { modelId, userData: model.userData };
      }
      return model;
    },

    async writeModel(model) {
      await ensureModelDir(modelDirPath(root, model.modelId));
      await writer.writeFileAtomic(modelInfoPath(root, model.modelId), encodeModelInfo(model));
    },

    async deleteModel(modelId) {
      const directory = modelDirPath(root, modelId);
      // Renaming first makes the deletion atomic; open() removes the rest if we crash midway.
      const doomed = path.join(root, tempFileName(modelId));
      try {
        await rename(directory, doomed);
      } catch (error) {
        if (isMissing(error)) {
          return;
        }
        throw error;
      }
      try {
        await syncDirectory(root); // the deletion must not be undone by a power loss
        await rm(doomed, { recursive: true, force: true });
      } catch (error) {
        warn("could not remove a deleted model's files; they will be removed on next start", {
          path: doomed,
          error: errorMessage(error),
        });
      }
    },

    async listVersions(modelId) {
      const directory = modelDirPath(root, modelId);
      const files = new Map<number, { info?: string; data?: string }>();
      for (const name of await readdirIfExists(directory)) {
        const parsed = parseVersionFileName(modelId, name);
        if (parsed !== undefined) {
          const entry = files.get(parsed.versionNumber) ?? {};
          entry[parsed.kind] = name;
          files.set(parsed.versionNumber, entry);
        }
      }
      const numbers = [...files.keys()].sort((a, b) => a - b);
      const loaded = await Promise.all(numbers.map((n) => loadVersion(modelId, n, files.get(n) ?? {})));
      const versions: VersionRecord[] = [];
      // Warnings in version order, whatever order the reads completed in.
      for (const result of loaded) {
        if ("skipped" in result) {
          warn(result.skipped, result.details);
        } else {
          versions.push(result);
        }
      }
      return versions;
    },

    async putVersion(version, dataChunks) {
      if (!version.archived) {
        throw new Error(`version ${version.versionNumber} of model "${version.modelId}" is not archived`);
      }
      const total = dataChunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
      if (total !== version.dataSize) {
        const which = `version ${version.versionNumber} of model "${version.modelId}"`;
        throw new Error(`${which}: data is ${total} bytes, data_size is ${version.dataSize}`);
      }
      await ensureModelDir(modelDirPath(root, version.modelId));
      await writer.writeVersionFilesAtomic({
        dataPath: versionDataPath(root, version.modelId, version.versionNumber),
        dataChunks,
        infoPath: versionInfoPath(root, version.modelId, version.versionNumber),
        infoText: encodeVersionInfo(version),
      });
    },

    async beginVersionData(modelId) {
      const directory = modelDirPath(root, modelId);
      await ensureModelDir(directory);
      const tempDataPath = path.join(directory, tempFileName(`${modelId}-upload.data`));
      let written = 0;
      let pending: Promise<void> = Promise.resolve();
      let aborted = false;
      return {
        append(chunks) {
          if (aborted) {
            return Promise.reject(new Error("streamed version data was aborted"));
          }
          const position = written;
          written += chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
          // A write queued before abort() must not recreate the file abort() removes.
          pending = pending.then(() => (aborted ? undefined : writer.writeChunksAt(tempDataPath, chunks, position)));
          return pending;
        },
        async commit(version) {
          await pending;
          if (written !== version.dataSize) {
            throw new Error(`streamed ${written} bytes for a version whose data_size is ${version.dataSize}`);
          }
          if (written === 0) {
            await writer.writeChunksAt(tempDataPath, [], 0);
          }
          await writer.commitStreamedVersion({
            tempDataPath,
            dataPath: versionDataPath(root, version.modelId, version.versionNumber),
            infoPath: versionInfoPath(root, version.modelId, version.versionNumber),
            infoText: encodeVersionInfo(version),
          });
        },
        async abort() {
          aborted = true;
          await pending.catch(() => {});
          await rm(tempDataPath, { force: true });
        },
      };
    },

    async deleteVersion(modelId, versionNumber) {
      // Info first: it is the commit marker, so a crash in between leaves no half version visible.
      await rm(versionInfoPath(root, modelId, versionNumber), { force: true });
      await rm(versionDataPath(root, modelId, versionNumber), { force: true });
    },

    async openVersionData(modelId, versionNumber) {
      const dataPath = versionDataPath(root, modelId, versionNumber);
      const missing = () => notFound(`no archived data for version ${versionNumber} of model "${modelId}"`);
      let handle: FileHandle;
      try {
        handle = await open(dataPath, "r");
      } catch (error) {
        if (isMissing(error)) {
          throw missing();
        }
        throw error;
      }
      try {
        const dataStat = await handle.stat();
        if (!dataStat.isFile()) {
          throw missing();
        }
        return createReader(handle, dataStat.size, dataPath);
      } catch (error) {
        await handle.close().catch(() => {});
        throw error;
      }
    },

    async readMeta(modelId, key) {
      return readTextIfExists(metaFilePath(root, modelId, key));
    },

    async writeMeta(modelId, key, value) {
      const metaPath = metaFilePath(root, modelId, key);
      await ensureModelDir(modelDirPath(root, modelId));
      await writer.writeFileAtomic(metaPath, value);
    },

    async overwriteMeta(modelId, key, value, { durable }) {
      const record = paddedRecord(value);
      const metaPath = metaFilePath(root, modelId, key);
      // Neither O_TRUNC nor a rename: a crash at any point leaves the previous record or the new one.
      const handle = await open(metaPath, constants.O_WRONLY | constants.O_CREAT, FILE_MODE);
      try {
        await handle.write(record, 0, record.byteLength, 0);
        if (durable) {
          await handle.truncate(record.byteLength); // whatever was longer before
          await handle.datasync();
        }
      } finally {
        await handle.close();
      }
      if (durable) {
        await syncDirectory(path.dirname(metaPath)); // the file may have just been created
      }
    },
  };
}

// Same permissions as the original server's files.
const FILE_MODE = 0o640;
/** Overwritten records all have this size, so a shorter value never leaves the end of a longer one behind. */
const META_RECORD_BYTES = 128;

function paddedRecord(value: string): Buffer {
  const record = Buffer.alloc(META_RECORD_BYTES, " ");
  const written = record.write(value, 0, "utf8");
  if (written !== Buffer.byteLength(value) || written >= META_RECORD_BYTES) {
    throw new Error(`metadata record of ${Buffer.byteLength(value)} bytes: at most ${META_RECORD_BYTES - 1} fit`);
  }
  record.write("\n", META_RECORD_BYTES - 1);
  return record;
}

/**
 * Creates a model directory inside the (existing) root. Not `recursive`: on a
 * read-only file system a recursive mkdir reports ENOENT instead of EROFS.
 */
async function ensureModelDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { mode: DIRECTORY_MODE });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
      throw error;
    }
    return;
  }
  // A new model directory must survive a power loss with the files acknowledged in it.
  await syncDirectory(path.dirname(dir));
}
