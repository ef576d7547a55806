/** What firstEvent needs of an emitter (Node streams, grpc-js calls, sockets). */
interface Listenable {
  once(event: string, listener: () => void): unknown;
  off(event: string, listener: () => void): unknown;
}

/** Resolves when `emitter` emits the first of `events`; every listener it added is removed then. */
export function firstEvent(emitter: Listenable, events: readonly string[]): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      for (const event of events) {
        emitter.off(event, done);
      }
      resolve();
    };
    for (const event of events) {
      emitter.once(event, done);
    }
  });
}
