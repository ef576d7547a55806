import { readFileSync } from "node:fs";

interface PackageJson {
  readonly name: string;
  readonly version: string;
}

/** name and version from package.json (dist/src/package-info.js → ../../package.json). */
export const packageInfo: PackageJson = JSON.parse(
  readFileSync(new URL("../../package.json", import.meta.url), "utf8"),
) as PackageJson;
