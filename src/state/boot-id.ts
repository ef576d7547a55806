import { readFile } from "node:fs/promises";

const BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id";

/**
 * The kernel's id of the current boot (Linux), or undefined where there is none. A write that
 * reached the page cache under this id survived whatever happened to the process since; under
 * another id, the machine itself restarted and the write may have been lost.
 */
export async function readBootId(): Promise<string | undefined> {
  try {
    const id = (await readFile(BOOT_ID_PATH, "utf8")).trim();
    return /^[0-9a-f-]{1,64}$/.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}
