import type { ServerWritableStream } from "@grpc/grpc-js";
import { firstEvent } from "../first-event.js";

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
  await firstEvent(call, ["drain", "cancelled", "close", "error"]);
  return !(call.cancelled || call.destroyed);
}
