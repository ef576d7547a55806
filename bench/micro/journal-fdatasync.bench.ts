/**
 * What one group commit of the model journal (src/archive/model-journal.ts) costs on this disk:
 * 16 records of a model file's size written with one pwrite and made durable with one fdatasync,
 * - preallocated: into a file whose blocks were written (zeros) and flushed beforehand, so the
 *   size does not change and fdatasync has no metadata to flush;
 * - growing: appended at the end of the file (the size changes at each batch).
 * Medians and p90 of the wall time per batch, microseconds. Run with
 * `npx node dist/bench/micro/journal-fdatasync.bench.js [directory]`.
 */
import { closeSync, fdatasyncSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

const RECORDS_PER_BATCH = 16;
const RECORD_BYTES = 400;
const BATCHES = 300;
const PREALLOCATED_BYTES = 4 * 1024 * 1024;

interface Figures {
  readonly medianUs: number;
  readonly p90Us: number;
}

function quantiles(samples: number[]): Figures {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  return { medianUs: Math.round(at(0.5)), p90Us: Math.round(at(0.9)) };
}

function timeBatches(fd: number, batch: Buffer): Figures {
  const samples: number[] = [];
  let position = 0;
  for (let index = 0; index < BATCHES; index++) {
    const start = process.hrtime.bigint();
    writeSync(fd, batch, 0, batch.byteLength, position);
    fdatasyncSync(fd);
    samples.push(Number(process.hrtime.bigint() - start) / 1000);
    position += batch.byteLength;
  }
  return quantiles(samples);
}

export function measureJournalSync(directory: string): { preallocated: Figures; growing: Figures } {
  const batch = Buffer.alloc(RECORDS_PER_BATCH * RECORD_BYTES, "x");
  const preallocatedPath = path.join(directory, "preallocated");
  const fd = openSync(preallocatedPath, "w+");
  writeSync(fd, Buffer.alloc(PREALLOCATED_BYTES));
  fsyncSync(fd);
  const preallocated = timeBatches(fd, batch);
  closeSync(fd);
  const growingFd = openSync(path.join(directory, "growing"), "w+");
  fsyncSync(growingFd);
  const growing = timeBatches(growingFd, batch);
  closeSync(growingFd);
  return { preallocated, growing };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const directory = mkdtempSync(path.join(process.argv[2] ?? os.tmpdir(), "journal-sync-"));
  try {
    // Alternated, three rounds: the disk is shared.
    for (let round = 0; round < 3; round++) {
      console.log(JSON.stringify(measureJournalSync(directory)));
    }
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}
