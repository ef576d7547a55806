import { readFile as readFileWithCallback, readFileSync, statSync } from "node:fs";
import { readdir, open, stat } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { compareCodePoints } from "../code-point-order.js";
import { notFound } from "../errors/index.js";
import type { ModelRecord, VersionRecord } from "../domain/index.js";
import type { ArchiveStore, VersionDataReader } from "./archive-store.js";
import { errorMessage, isMissing } from "./errno.js";
import {
  archiveMetaFilePath,
  metaFilePath,
  modelDirPath,
  modelInfoPath,
  parsePendingMarkName,
  parseVersionFileName,
  pendingMarkPath,
  versionDataPath,
  versionInfoPath,
} from "./layout.js";
import { type SkippedVersion, keepServable, loadListedVersion } from "./listed-version.js";
import { decodeModelInfo } from "./yaml-codec.js";

/**
 * fs.readFile with a callback: for the small info files read by the hundred at start-up and at a
 * model's first use, it costs about half the main thread's time and wall time of fs/promises'
 * readFile (which takes several promise round trips per file). Wrapped by hand, not with
 * util.promisify: an `import … from "node:util"` makes the ESM loader build node:util's facade at
 * every start, which reads every export, lazy ones included, and so loads parseArgs, diff,
 * setTraceSigInt… (issue #15, start-up).
 */
function readFile(filePath: string, encoding: "utf8"): Promise<string> {
  return new Promise((resolve, reject) => readFileWithCallback(filePath, encoding, (error, text) => (error === null ? resolve(text) : reject(error))));
}

/** The reading half of the archive directory: listing models and versions, reading infos, data and metadata. */
export type FsArchiveReads = Pick<ArchiveStore, "listModelIds" | "readModel" | "readModels" | "listVersions" | "openVersionData" | "readMeta" | "readArchiveMeta">;

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

/**
 * How long the model listing reads synchronously before it gives the event loop a turn. The listing
 * (a stat and an info read per model) runs while the server binds and serves its first calls (issue
 * #15): read synchronously, a model costs ~15 µs of the main thread on a local disk, less than the
 * callbacks of the four thread-pool round trips of an fs.readFile and the stat, and it takes no
 * pool thread from the other core; the turns bound how long a call arriving meanwhile waits.
 */
export const LISTING_TURN_MS = 2;

/** `work` applied to each item synchronously, in order, the event loop getting a turn every `turnMs` or so. */
export async function inTurns<T, R>(items: readonly T[], turnMs: number, work: (item: T) => R): Promise<R[]> {
  const results: R[] = [];
  let turnStart = performance.now();
  for (const item of items) {
    if (performance.now() - turnStart >= turnMs) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      turnStart = performance.now();
    }
    results.push(work(item));
  }
  return results;
}

/** `listingTurnMs` sets LISTING_TURN_MS (tests). */
export function createFsArchiveReads(
  root: string,
  warn: (message: string, details: Record<string, unknown>) => void,
  options: { readonly listingTurnMs?: number } = {},
): FsArchiveReads {
  const listingTurnMs = options.listingTurnMs ?? LISTING_TURN_MS;
  /** Whether `infoPath` is a model info file; an unreadable one is reported and treated as absent. */
  function isModelInfoFile(infoPath: string): boolean {
    try {
      return statSync(infoPath).isFile();
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
    files: { info?: string; data?: string; pending?: boolean },
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
      pendingMark: files.pending === true ? () => readTextIfExists(pendingMarkPath(root, modelId, versionNumber)) : undefined,
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

  /** The model of `infoPath`'s text (undefined: no such file); an unreadable or unparsable one is reported and also gives undefined. */
  function modelOf(modelId: string, infoPath: string, readText: () => string | undefined): ModelRecord | undefined {
    let model: ModelRecord;
    try {
      const text = readText();
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

  /** Undefined if there is no such model; an unreadable or unparsable model info is reported and also gives undefined. */
  async function readModel(modelId: string): Promise<ModelRecord | undefined> {
    const infoPath = modelInfoPath(root, modelId);
    let text: string | undefined;
    try {
      text = await readTextIfExists(infoPath);
    } catch (error) {
      return modelOf(modelId, infoPath, () => {
        throw error;
      });
    }
    return modelOf(modelId, infoPath, () => text);
  }

  function readModelSync(modelId: string): ModelRecord | undefined {
    const infoPath = modelInfoPath(root, modelId);
    return modelOf(modelId, infoPath, () => {
      try {
        return readFileSync(infoPath, "utf8");
      } catch (error) {
        if (isMissing(error)) {
          return undefined;
        }
        throw error;
      }
    });
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
      const found = await inTurns(candidates, listingTurnMs, ({ name }) => {
        let infoPath: string;
        try {
          infoPath = modelInfoPath(root, name);
        } catch {
          return undefined; // a directory name that can never be a model id
        }
        return isModelInfoFile(infoPath) ? name : undefined;
      });
      return found.filter((name): name is string => name !== undefined).sort(compareCodePoints);
    },

    readModel,

    readModels(modelIds) {
      return inTurns(modelIds, listingTurnMs, readModelSync);
    },

    async listVersions(modelId) {
      const directory = modelDirPath(root, modelId);
      const files = new Map<number, { info?: string; data?: string; pending?: boolean }>();
      const pending: number[] = [];
      for (const name of await readdirIfExists(directory)) {
        const parsed = parseVersionFileName(modelId, name);
        if (parsed !== undefined) {
          const entry = files.get(parsed.versionNumber) ?? {};
          entry[parsed.kind] = name;
          files.set(parsed.versionNumber, entry);
        } else {
          const marked = parsePendingMarkName(name);
          if (marked !== undefined) {
            pending.push(marked);
          }
        }
      }
      for (const versionNumber of pending) {
        const entry = files.get(versionNumber);
        if (entry !== undefined) {
          entry.pending = true;
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

    async readArchiveMeta(key) {
      return readTextIfExists(archiveMetaFilePath(root, key));
    },

  };
}
