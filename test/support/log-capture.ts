import { Writable } from "node:stream";

/** A stream for a server's pino logger that parses each JSON log line into `lines`. */
export function jsonLogSink(lines: Record<string, unknown>[]): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) {
        if (line !== "") lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
}
