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

function checkModelId(modelId: string): void {
  // Model ids are validated by the registry; this only guarantees one plain path segment.
  if (
    modelId === "" ||
    modelId.startsWith(".") ||
    modelId.includes("/") ||
    modelId.includes("\\") ||
    modelId.includes("\0")
  ) {
    throw invalidArgument(`invalid model id ${JSON.stringify(modelId)}: not usable as an archive directory name`);
  }
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
  return inside(root, modelId, `${modelId}-v${formatVersionNumber(versionNumber)}.yaml`);
}

export function versionDataPath(root: string, modelId: string, versionNumber: number): string {
  checkModelId(modelId);
  checkVersionNumber(versionNumber);
  return inside(root, modelId, `${modelId}-v${formatVersionNumber(versionNumber)}.data`);
}

/** Our own per-model metadata file, `<root>/<model_id>/.cogment-ts-<key>`; keys are `[a-z-]+`. */
export function metaFilePath(root: string, modelId: string, key: string): string {
  checkModelId(modelId);
  if (!META_KEY_PATTERN.test(key)) {
    throw invalidArgument(`invalid archive metadata key ${JSON.stringify(key)}`);
  }
  return inside(root, modelId, `${META_PREFIX}${key}`);
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

// File names are limited to 255 bytes on the usual file systems.
const MAX_FILE_NAME_BYTES = 255;
const TEMP_SUFFIX_LENGTH = ".tmp-".length + 16;

/**
 * `.<final-basename>.tmp-<random hex>`: never a model, version or metadata file name. The base name
 * is cut if needed (names here are ASCII), so a temp name fits wherever its final name does.
 */
export function tempFileName(finalBaseName: string): string {
  const kept = finalBaseName.slice(0, MAX_FILE_NAME_BYTES - 1 - TEMP_SUFFIX_LENGTH);
  return `.${kept}.tmp-${randomBytes(8).toString("hex")}`;
}

export function isTempFileName(name: string): boolean {
  return TEMP_NAME_PATTERN.test(name);
}
