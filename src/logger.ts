import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger } from "pino";

/** The root logger: JSON lines on stdout. Modules take `logger.child({ module })` once. */
export function createLogger(level: LevelWithSilent, destination?: pino.DestinationStream): Logger {
  return pino(
    { level, base: { service: "cogment-model-registry" }, timestamp: pino.stdTimeFunctions.isoTime },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
