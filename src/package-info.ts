import { readFileSync } from "node:fs";

interface PackageJson {
  readonly name: string;
  readonly version: string;
}

/**
 * The package's root directory: two levels above the compiled file of this module, whether tsc wrote
 * it (dist/src/package-info.js) or the production bundle holds it (dist/bundle/<chunk>.js).
 */
export const PACKAGE_ROOT: URL = new URL("../../", import.meta.url);

/** name and version from package.json. */
export const packageInfo: PackageJson = JSON.parse(readFileSync(new URL("package.json", PACKAGE_ROOT), "utf8")) as PackageJson;
