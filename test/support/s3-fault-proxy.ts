/*
 * A fault-injecting HTTP proxy in front of the S3 test server, on a loopback port: it forwards every
 * request as it is (the signature stays valid: the Host header is passed on unchanged) unless a rule
 * matches it, and then answers what S3 answers under load or breaks the exchange:
 *   slow-down       503 SlowDown (S3's throttling reply)
 *   internal-error  500 InternalError
 *   precondition-failed  412 PreconditionFailed (what S3 answers a GET whose If-Match no longer holds,
 *                   which the test server itself does not check)
 *   conditional-conflict  409 ConditionalRequestConflict (what S3 answers a conditional write that
 *                   met another write of the key in flight)
 *   stall           reads the request, never answers (until the client gives up)
 *   reset           closes the connection without an answer
 *   cut-body        forwards the answer, then closes the connection (or goes silent: `then: "stall"`)
 *                   once `afterBytes` of its body went through
 *   lose-reply      forwards the request (the store does what it asks), then closes the connection
 *                   without passing on the answer: a write done whose reply was lost
 *   hold            keeps the request (unread) until releaseHeld(), then forwards it as it is: a
 *                   request that reaches the store late, e.g. from an instance stalled after sending it
 * A rule applies to the next `times` requests whose method and path (with its query) match.
 */
import { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse, Agent, createServer, request as httpRequest } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export type S3Fault =
  | { readonly kind: "slow-down" }
  | { readonly kind: "internal-error" }
  | { readonly kind: "precondition-failed" }
  | { readonly kind: "conditional-conflict" }
  | { readonly kind: "stall" }
  | { readonly kind: "reset" }
  | { readonly kind: "lose-reply" }
  | { readonly kind: "hold" }
  | { readonly kind: "cut-body"; readonly afterBytes: number; readonly then?: "reset" | "stall" };

export interface FaultRuleSpec {
  readonly method: string;
  readonly path: RegExp;
  readonly fault: S3Fault;
  /** How many matching requests get the fault; all of them by default. */
  readonly times?: number;
}

export interface FaultRule extends FaultRuleSpec {
  /** Requests that got the fault so far. */
  readonly hits: number;
}

export interface SeenRequest {
  readonly method: string;
  /** Path and query, as sent. */
  readonly path: string;
  readonly range: string | undefined;
  /** The fault it got, if any. */
  readonly fault: S3Fault["kind"] | undefined;
}

export interface S3FaultProxy {
  readonly endpoint: string;
  readonly port: number;
  /** Every request seen, in order of arrival. */
  readonly requests: readonly SeenRequest[];
  inject(rule: FaultRuleSpec): FaultRule;
  /**
   * Forwards the requests held so far (fault "hold"), in order of arrival: those whose path matches
   * `path`, at most `limit` of them; returns how many.
   */
  releaseHeld(path?: RegExp, limit?: number): number;
  /** Removes every rule (requests stalled so far stay stalled until their client gives up). */
  clear(): void;
  close(): Promise<void>;
}

const ERROR_REPLIES = {
  "slow-down": { status: 503, code: "SlowDown", message: "Please reduce your request rate." },
  "internal-error": { status: 500, code: "InternalError", message: "We encountered an internal error. Please try again." },
  "precondition-failed": { status: 412, code: "PreconditionFailed", message: "At least one of the pre-conditions you specified did not hold" },
  "conditional-conflict": { status: 409, code: "ConditionalRequestConflict", message: "A conflicting operation occurred. If using PutObject you can retry the request." },
} as const;

function errorXml(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>s3-fault-proxy</RequestId></Error>`;
}

/** Forwarded request headers: all but Expect (the proxy has already answered 100-continue). */
function forwardedHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const { expect: _expect, ...rest } = headers;
  return rest;
}

export async function startS3FaultProxy(targetPort: number): Promise<S3FaultProxy> {
  const rules: { spec: FaultRuleSpec; hits: number }[] = [];
  const requests: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  const agent = new Agent({ keepAlive: true });
  const held: { path: string; req: IncomingMessage; res: ServerResponse }[] = [];

  function take(method: string, path: string): S3Fault | undefined {
    for (const rule of rules) {
      if (rule.spec.method === method && rule.spec.path.test(path) && rule.hits < (rule.spec.times ?? Number.POSITIVE_INFINITY)) {
        rule.hits++;
        return rule.spec.fault;
      }
    }
    return undefined;
  }

  function forward(req: IncomingMessage, res: ServerResponse, cut?: Extract<S3Fault, { kind: "cut-body" | "lose-reply" }>): void {
    const upstream = httpRequest(
      { host: "127.0.0.1", port: targetPort, method: req.method, path: req.url, headers: forwardedHeaders(req.headers), agent },
      (reply) => {
        if (cut?.kind === "lose-reply") {
          reply.resume();
          reply.on("end", () => req.socket.destroy());
          return;
        }
        res.writeHead(reply.statusCode ?? 502, reply.statusMessage, reply.headers);
        let sent = 0;
        reply.on("data", (chunk: Buffer) => {
          if (cut === undefined) {
            res.write(chunk);
            return;
          }
          if (sent >= cut.afterBytes) {
            return; // already cut: the rest is dropped
          }
          const part = chunk.subarray(0, cut.afterBytes - sent);
          sent += part.byteLength;
          if (sent < cut.afterBytes) {
            res.write(part);
            return;
          }
          reply.destroy();
          // Once the bytes are on their way, the connection is closed mid-body (or left silent).
          res.write(part, () => {
            if (cut.then !== "stall") {
              res.socket?.destroy();
            }
          });
        });
        reply.on("end", () => res.end());
        reply.on("error", () => {
          if (cut === undefined || sent < cut.afterBytes) {
            res.destroy();
          }
        });
      },
    );
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  }

  const server = createServer((req, res) => {
    const method = req.method ?? "";
    const path = req.url ?? "";
    const fault = take(method, path);
    requests.push({ method, path, range: req.headers.range, fault: fault?.kind });
    switch (fault?.kind) {
      case undefined:
        forward(req, res);
        return;
      case "cut-body":
      case "lose-reply":
        forward(req, res, fault);
        return;
      case "reset":
        req.socket.destroy();
        return;
      case "hold":
        held.push({ path, req, res });
        return;
      case "stall":
        req.resume(); // read the request; never answer
        return;
      case "slow-down":
      case "internal-error":
      case "precondition-failed":
      case "conditional-conflict": {
        const reply = ERROR_REPLIES[fault.kind];
        req.resume();
        req.on("end", () => {
          const body = method === "HEAD" ? "" : errorXml(reply.code, reply.message);
          res.writeHead(reply.status, { "content-type": "application/xml", "content-length": Buffer.byteLength(body) });
          res.end(body);
        });
        return;
      }
    }
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    requests,
    inject(spec) {
      const rule = { spec, hits: 0 };
      rules.push(rule);
      return {
        ...spec,
        get hits() {
          return rule.hits;
        },
      };
    },
    releaseHeld(path, limit = Number.POSITIVE_INFINITY) {
      const released = held.filter((request) => path === undefined || path.test(request.path)).slice(0, limit);
      for (const request of released) {
        held.splice(held.indexOf(request), 1);
        forward(request.req, request.res);
      }
      return released.length;
    },
    clear() {
      rules.length = 0;
    },
    async close() {
      rules.length = 0;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) {
        socket.destroy();
      }
      agent.destroy();
      await closed;
    },
  };
}
