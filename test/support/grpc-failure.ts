import assert from "node:assert/strict";

/** What a failed grpc-js call rejects with: its status code and details. */
export interface GrpcFailure {
  readonly code: number;
  readonly details: string;
}

/** The failure of a call expected to fail (the test fails if it succeeds). */
export async function failure(call: Promise<unknown>): Promise<GrpcFailure> {
  return call.then(
    () => assert.fail("expected the call to fail"),
    (error: GrpcFailure) => error,
  );
}
