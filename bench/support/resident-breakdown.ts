/**
 * Where a process's resident memory is, from /proc/<pid>/smaps (Linux): V8's heap pages (anonymous
 * mappings in multiples of V8's 256 KiB pages), the C allocator's (the brk heap and the other
 * anonymous mappings: glibc's arenas are 64 MiB mappings, its large blocks page-sized), and mapped
 * files (the node binary, libraries). An approximation: a malloc mapping may happen to be a multiple
 * of 256 KiB, and thread stacks count as malloc.
 */
import { readFileSync } from "node:fs";

export interface ResidentBreakdown {
  readonly v8PagesKiB: number;
  readonly mallocKiB: number;
  readonly filesKiB: number;
}

const V8_PAGE_BYTES = 256 * 1024;

export function readResidentBreakdown(pid: number): ResidentBreakdown {
  let v8PagesKiB = 0;
  let mallocKiB = 0;
  let filesKiB = 0;
  let bucket: "v8" | "malloc" | "files" | "other" = "other";
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const mapping = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (mapping !== null) {
      const size = parseInt(mapping[2] as string, 16) - parseInt(mapping[1] as string, 16);
      const name = mapping[3] as string;
      bucket =
        name === "[heap]" ? "malloc" : name === "" ? (size % V8_PAGE_BYTES === 0 ? "v8" : "malloc") : name.startsWith("/") ? "files" : "other";
    } else if (line.startsWith("Rss:")) {
      const kib = Number(line.split(/\s+/)[1]);
      if (bucket === "v8") v8PagesKiB += kib;
      else if (bucket === "malloc") mallocKiB += kib;
      else if (bucket === "files") filesKiB += kib;
    }
  }
  return { v8PagesKiB, mallocKiB, filesKiB };
}
