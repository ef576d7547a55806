/** What a server stream emits when it goes away (grpc-js emits 'cancelled' without closing). */
interface EndingCall {
  once(event: "cancelled" | "close" | "error", listener: () => void): unknown;
  off(event: "cancelled" | "close" | "error", listener: () => void): unknown;
}

/**
 * Counts the writes handed to a call whose completion callbacks have not come yet. grpc-js calls a
 * write's callback once the HTTP/2 stream has written the message to the socket, so when every
 * callback has come, nothing outside our code reads the messages' memory any more.
 */
export class WriteConfirmations {
  #pending = 0;
  #idle: (() => void) | undefined = undefined;

  /** The callback to pass with one write. */
  track(): () => void {
    this.#pending++;
    let confirmed = false;
    return () => {
      if (!confirmed) {
        confirmed = true;
        this.#pending--;
        if (this.#pending === 0) {
          this.#idle?.();
        }
      }
    };
  }

  get allConfirmed(): boolean {
    return this.#pending === 0;
  }

  /** Resolves once every write is confirmed, the call goes away, or `timeoutMs` passes: whichever comes first. */
  settled(call: EndingCall, timeoutMs: number): Promise<void> {
    if (this.#pending === 0) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        this.#idle = undefined;
        clearTimeout(timer);
        call.off("cancelled", done);
        call.off("close", done);
        call.off("error", done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.#idle = done;
      call.once("cancelled", done);
      call.once("close", done);
      call.once("error", done);
    });
  }
}
