import type { ServerWritableStream } from "@grpc/grpc-js";

type WritableCall = Pick<ServerWritableStream<unknown, unknown>, "write" | "once" | "off" | "cancelled" | "destroyed">;

/**
 * Writes one message, honouring backpressure: when grpc-js says its buffer is
 * full, wait for 'drain' (or for the call to go away) before the next write.
 * Resolves to false once the call is cancelled or closed. `written` is called
 * when the message has gone to the socket (or was dropped unsent), if ever.
 */
export async function writeWithBackpressure(call: WritableCall, message: unknown, written?: () => void): Promise<boolean> {
  if (call.cancelled || call.destroyed) {
    written?.();
    return false;
  }
  if (call.write(message, written)) {
    return true;
  }
  await new Promise<void>((resolve) => {
    const done = (): void => {
      call.off("drain", done);
      call.off("cancelled", done);
      call.off("close", done);
      call.off("error", done);
      resolve();
    };
    call.once("drain", done);
    call.once("cancelled", done);
    call.once("close", done);
    call.once("error", done);
  });
  return !(call.cancelled || call.destroyed);
}
