import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry as MetricsRegistry } from "prom-client";
import type { Logger } from "../logger.js";

export interface MetricsEndpointOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly log: Logger;
}

export interface MetricsEndpoint {
  /** The bound port. */
  readonly port: number;
  /** Stops listening and closes the open connections. */
  close(): Promise<void>;
}

const METRICS_PATH = "/metrics";
const TEXT = "text/plain; charset=utf-8";

/** Serves `GET /metrics` in the Prometheus text format over plain HTTP; every other request gets 404. */
export async function startMetricsEndpoint(register: MetricsRegistry, options: MetricsEndpointOptions): Promise<MetricsEndpoint> {
  const { log } = options;
  const server: Server = createServer((request, response) => {
    const url = request.url ?? "";
    const query = url.indexOf("?");
    const path = query === -1 ? url : url.slice(0, query);
    if (request.method !== "GET" || path !== METRICS_PATH) {
      response.writeHead(404, { "Content-Type": TEXT });
      response.end(`not found: metrics are served on GET ${METRICS_PATH}\n`);
      return;
    }
    register.metrics().then(
      (body) => {
        response.writeHead(200, { "Content-Type": register.contentType, "Content-Length": Buffer.byteLength(body) });
        response.end(body);
      },
      (error: unknown) => {
        log.error({ err: error }, "cannot collect the metrics");
        response.writeHead(500, { "Content-Type": TEXT });
        response.end("cannot collect the metrics\n");
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (error) => log.error({ err: error }, "metrics endpoint error"));
  const port = (server.address() as AddressInfo).port;

  let closing: Promise<void> | undefined;
  return {
    port,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
