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

  /**
   * Resolves once every write is confirmed or the call goes away, whichever comes first. No
   * timeout: while a client that stopped reading keeps its stream open, the unconfirmed messages
   * (views of a version's memory) are still queued in the HTTP/2 stream, so their bytes must stay
   * counted. Closing the stream or the connection, from either side, confirms them or ends the call.
   */
  settled(call: EndingCall): Promise<void> {
    if (this.#pending === 0) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        this.#idle = undefined;
        call.off("cancelled", done);
        call.off("close", done);
        call.off("error", done);
        resolve();
      };
      this.#idle = done;
      call.once("cancelled", done);
      call.once("close", done);
      call.once("error", done);
    });
  }
}
