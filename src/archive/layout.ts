/*
 * File names of the archive directory, identical to the original Go server's:
 *   <root>/<model_id>/<model_id>.yaml
 *   <root>/<model_id>/<model_id>-v000001.yaml
 *   <root>/<model_id>/<model_id>-v000001.data
 * Everything of ours that is not part of that layout is a dotfile, which the original ignores.
 */
import { randomBytes } from "node:crypto";
import path from "node:path";
import { invalidArgument } from "../errors/index.js";

const VERSION_DIGITS = 6;
const META_PREFIX = ".cogment-ts-";
const META_KEY_PATTERN = /^[a-z-]+$/;
const TEMP_NAME_PATTERN = /^\..+\.tmp-[0-9a-f]+$/s;

/** Go's `%06d`: at least six digits, more when the number is larger. */
export function formatVersionNumber(versionNumber: number): string {
  return String(versionNumber).padStart(VERSION_DIGITS, "0");
}

/** The file system's limit on one file name (NAME_MAX: 255 bytes on ext4, XFS, Btrfs, ZFS). */
export const MAX_FILE_NAME_BYTES = 255;

/**
 * The longest model id, in bytes of UTF-8: its version files, `<model_id>-v000001.data` (13 bytes
 * more), must fit one file name. Version numbers past 999,999 add a byte per digit (see
 * checkFileName). The original, which writes the same names, meets the same limit.
 */
export const MAX_MODEL_ID_BYTES = MAX_FILE_NAME_BYTES - "-v000001.data".length;

export const MODEL_ID_RULE =
  `1 to ${MAX_MODEL_ID_BYTES} bytes of UTF-8, not starting with '.', ` +
  "without '/', '\\' or control characters (U+0000 to U+001F, U+007F)";

// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/u;

/**
 * Why `modelId` cannot name a model, or undefined when it can: a model id is one directory name
 * of the archive, stored byte for byte as given (no Unicode normalisation).
 */
export function modelIdProblem(modelId: string): string | undefined {
  if (modelId === "") {
    return "it is empty";
  }
  if (modelId === "." || modelId === "..") {
    return `it is ${JSON.stringify(modelId)}`;
  }
  if (modelId.startsWith(".")) {
    return "it starts with '.' (reserved for the registry's own files)";
  }
  if (modelId.includes("/")) {
    return "it contains '/'";
  }
  if (modelId.includes("\\")) {
    return "it contains '\\'";
  }
  const control = CONTROL_CHARACTER.exec(modelId);
  if (control !== null) {
    return `it contains the control character U+${control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
  }
  const bytes = Buffer.byteLength(modelId);
  if (bytes > MAX_MODEL_ID_BYTES) {
    return `it is ${bytes} bytes of UTF-8, more than ${MAX_MODEL_ID_BYTES}`;
  }
  return undefined;
}

function checkModelId(modelId: string): void {
  // The rpc layer already refused such ids with the field's name; this guards every path.
  const problem = modelIdProblem(modelId);
  if (problem !== undefined) {
    throw invalidArgument(`invalid model id ${JSON.stringify(modelId)}: ${problem}; expected ${MODEL_ID_RULE}`);
  }
}

/** Refuses a version file name past the limit (ids of 242 bytes with version numbers past 999,999). */
function checkFileName(modelId: string, versionNumber: number, fileName: string): string {
  const bytes = Buffer.byteLength(fileName);
  if (bytes > MAX_FILE_NAME_BYTES) {
    throw invalidArgument(
      `model_id is too long to archive version ${versionNumber}: its file name would be ${bytes} bytes of UTF-8 ` +
        `(${Buffer.byteLength(modelId)} bytes of model id), more than the ${MAX_FILE_NAME_BYTES}-byte limit of file names`,
    );
  }
  return fileName;
}

function checkVersionNumber(versionNumber: number): void {
  if (!Number.isSafeInteger(versionNumber) || versionNumber < 1) {
    throw invalidArgument(`invalid version number ${versionNumber}`);
  }
}

/** Joins below root and refuses any result that would not be strictly inside root. */
function inside(root: string, ...segments: string[]): string {
  const base = path.resolve(root);
  const relative = path.relative(base, path.resolve(base, ...segments));
  if (
    relative === "" ||
    path.isAbsolute(relative) ||
    relative === ".." ||
    relative.startsWith(`..${path.sep}`)
  ) {
    throw invalidArgument(`path ${JSON.stringify(segments.join("/"))} is outside the archive directory`);
  }
  return path.join(root, ...segments);
}

export function modelDirPath(root: string, modelId: string): string {
  checkModelId(modelId);
  return inside(root, modelId);
}

export function modelInfoPath(root: string, modelId: string): string {
  checkModelId(modelId);
  return inside(root, modelId, `${modelId}.yaml`);
}

export function versionInfoPath(root: string, modelId: string, versionNumber: number): string {
  checkModelId(modelId);
  checkVersionNumber(versionNumber);
  return inside(root, modelId, checkFileName(modelId, versionNumber, `${modelId}-v${formatVersionNumber(versionNumber)}.yaml`));
}

export function versionDataPath(root: string, modelId: string, versionNumber: number): string {
  checkModelId(modelId);
  checkVersionNumber(versionNumber);
  return inside(root, modelId, checkFileName(modelId, versionNumber, `${modelId}-v${formatVersionNumber(versionNumber)}.data`));
}

/** Whether a file name of a model's directory is one of our metadata files (metaFilePath). */
export const isMetaFileName = (name: string): boolean => name.startsWith(META_PREFIX);

/** Our own per-model metadata file, `<root>/<model_id>/.cogment-ts-<key>`; keys are `[a-z-]+`. */
export function metaFilePath(root: string, modelId: string, key: string): string {
  checkModelId(modelId);
  if (!META_KEY_PATTERN.test(key)) {
    throw invalidArgument(`invalid archive metadata key ${JSON.stringify(key)}`);
  }
  return inside(root, modelId, `${META_PREFIX}${key}`);
}

const PENDING_MARK_PREFIX = `${META_PREFIX}pending-v`;

/**
 * `<root>/<model_id>/.cogment-ts-pending-v<NNNNNN>`: written by a writer sharing the archive (Redis
 * mode) before it puts version N's files in place, holding the text of N's info, and removed once
 * the shared state committed N. A listing skips a version whose info is still the mark's text: its
 * commit never completed (see ArchiveStore.completeVersion).
 */
export function pendingMarkPath(root: string, modelId: string, versionNumber: number): string {
  checkModelId(modelId);
  checkVersionNumber(versionNumber);
  return inside(root, modelId, `${PENDING_MARK_PREFIX}${formatVersionNumber(versionNumber)}`);
}

/** The version number of a pending mark's file name (pendingMarkPath), or undefined for any other name. */
export function parsePendingMarkName(fileName: string): number | undefined {
  if (!fileName.startsWith(PENDING_MARK_PREFIX)) {
    return undefined;
  }
  const digits = fileName.slice(PENDING_MARK_PREFIX.length);
  const versionNumber = Number(digits);
  return /^\d+$/.test(digits) && Number.isSafeInteger(versionNumber) && versionNumber >= 1 && formatVersionNumber(versionNumber) === digits ? versionNumber : undefined;
}

/** Our own archive-wide metadata file, `<root>/.cogment-ts-<key>` (beside the model journal); keys are `[a-z-]+`. */
export function archiveMetaFilePath(root: string, key: string): string {
  if (!META_KEY_PATTERN.test(key)) {
    throw invalidArgument(`invalid archive metadata key ${JSON.stringify(key)}`);
  }
  return path.join(path.resolve(root), `${META_PREFIX}${key}`);
}

/**
 * Recognises `<model_id>-v<NNNNNN>.yaml|.data` in the model's directory. Only the canonical
 * spelling of the number counts (`v000001`, never `v1` or `v0000001`), so that a version has
 * exactly one pair of files.
 */
export function parseVersionFileName(
  modelId: string,
  fileName: string,
): { versionNumber: number; kind: "info" | "data" } | undefined {
  const prefix = `${modelId}-v`;
  if (!fileName.startsWith(prefix)) {
    return undefined;
  }
  const match = /^(\d+)\.(yaml|data)$/.exec(fileName.slice(prefix.length));
  if (match === null) {
    return undefined;
  }
  const [, digits = "", extension] = match;
  const versionNumber = Number(digits);
  if (!Number.isSafeInteger(versionNumber) || versionNumber < 1 || formatVersionNumber(versionNumber) !== digits) {
    return undefined;
  }
  return { versionNumber, kind: extension === "yaml" ? "info" : "data" };
}

const TEMP_SUFFIX_LENGTH = ".tmp-".length + 16;

/**
 * `.<final-basename>.tmp-<random hex>`: never a model, version or metadata file name. The base name
 * is cut if needed (at a character boundary, counting bytes of UTF-8), so a temp name fits
 * wherever its final name does.
 */
export function tempFileName(finalBaseName: string): string {
  return `.${cutToUtf8Bytes(finalBaseName, MAX_FILE_NAME_BYTES - 1 - TEMP_SUFFIX_LENGTH)}.tmp-${randomBytes(8).toString("hex")}`;
}

/** The longest prefix of `text` of at most `maxBytes` bytes of UTF-8 that does not split a character. */
function cutToUtf8Bytes(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) {
    return text;
  }
  let bytes = 0;
  let end = 0;
  for (const character of text) {
    bytes += Buffer.byteLength(character);
    if (bytes > maxBytes) {
      break;
    }
    end += character.length;
  }
  return text.slice(0, end);
}

export function isTempFileName(name: string): boolean {
  return TEMP_NAME_PATTERN.test(name);
}
