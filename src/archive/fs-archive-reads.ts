import { readFile as readFileWithCallback } from "node:fs";
import { readdir, open, stat } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { promisify } from "node:util";
import { compareCodePoints } from "../code-point-order.js";
import { notFound } from "../errors/index.js";
import type { ModelRecord, VersionRecord } from "../domain/index.js";
import type { ArchiveStore, VersionDataReader } from "./archive-store.js";
import { type ConcurrencyLimit, createConcurrencyLimit } from "./concurrency-limit.js";
import { errorMessage, isMissing } from "./errno.js";
import { metaFilePath, modelDirPath, modelInfoPath, parseVersionFileName, versionDataPath, versionInfoPath } from "./layout.js";
import { type SkippedVersion, keepServable, loadListedVersion } from "./listed-version.js";
import { decodeModelInfo } from "./yaml-codec.js";

/**
 * fs.readFile with a callback: for the small info files read by the hundred at start-up and at a
 * model's first use, it costs about half the main thread's time and wall time of fs/promises'
 * readFile (which takes several promise round trips per file).
 */
const readFile = promisify(readFileWithCallback);

/** The reading half of the archive directory: listing models and versions, reading infos, data and metadata. */
export type FsArchiveReads = Pick<ArchiveStore, "listModelIds" | "readModel" | "readModels" | "listVersions" | "openVersionData" | "readMeta">;

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

export async function readdirIfExists(directory: string): Promise<string[]> {
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

/** `startupScans` paces the model listing's requests (a stat and an info read per model); unlimited by default. */
export function createFsArchiveReads(
  root: string,
  warn: (message: string, details: Record<string, unknown>) => void,
  startupScans: ConcurrencyLimit = createConcurrencyLimit(Number.MAX_SAFE_INTEGER),
): FsArchiveReads {
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
  function loadVersion(
    modelId: string,
    versionNumber: number,
    files: { info?: string; data?: string },
  ): Promise<VersionRecord | SkippedVersion> {
    const infoPath = versionInfoPath(root, modelId, versionNumber);
    const dataPath = versionDataPath(root, modelId, versionNumber);
    return loadListedVersion(modelId, versionNumber, {
      locationName: "path",
      infoLocation: infoPath,
      dataLocation: dataPath,
      hasInfo: files.info !== undefined,
      hasData: files.data !== undefined,
      readInfo: () => readFile(infoPath, "utf8"),
      async dataSize() {
        try {
          const dataStat = await stat(dataPath);
          return dataStat.isFile() ? dataStat.size : { problem: "data path is not a file" };
        } catch (error) {
          return { problem: "unreadable data file", error: errorMessage(error) };
        }
      },
    });
  }

  /** Undefined if there is no such model; an unreadable or unparsable model info is reported and also gives undefined. */
  async function readModel(modelId: string): Promise<ModelRecord | undefined> {
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
  }

  return {
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
          return (await startupScans.run(() => isModelInfoFile(infoPath))) ? name : undefined;
        }),
      );
      return found.filter((name): name is string => name !== undefined).sort(compareCodePoints);
    },

    readModel,

    readModels(modelIds) {
      return Promise.all(modelIds.map((modelId) => startupScans.run(() => readModel(modelId))));
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
      // Warnings in version order, whatever order the reads completed in.
      return keepServable(loaded, warn);
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

  };
}
