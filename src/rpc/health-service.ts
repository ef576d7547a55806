import { cutText } from "../cut-text.js";
import { create } from "@bufbuild/protobuf";
import {
  Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../gen/grpc/health/v1/health_pb.js";
import { notFound } from "../errors/index.js";
import { LatestWins } from "../latest-wins.js";
import { type ServiceImplementation, createServiceDefinition } from "./service-definition.js";
import { requestChecks } from "./request-limits.js";
import { writeWithBackpressure } from "./stream-writer.js";
import { toServiceError } from "./to-service-error.js";

export { ServingStatus };

interface HealthWatcher {
  status(status: ServingStatus): void;
  end(): void;
}

/** The serving status of each service name ("" is the server as a whole), with watchers. */
export class HealthStatus {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Map<string, Set<HealthWatcher>>();

  constructor(services: readonly string[], initial: ServingStatus) {
    for (const service of services) {
      this.statuses.set(service, initial);
    }
  }

  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  /** Sets every known service's status and tells their watchers. */
  setAll(status: ServingStatus): void {
    for (const service of this.statuses.keys()) {
      this.statuses.set(service, status);
      for (const watcher of this.watchers.get(service) ?? []) {
        watcher.status(status);
      }
    }
  }

  /** Stopping: every service turns NOT_SERVING, and Watch streams end once they said so. */
  shutdown(): void {
    this.setAll(ServingStatus.NOT_SERVING);
    for (const set of this.watchers.values()) {
      for (const watcher of set) {
        watcher.end();
      }
    }
  }

  watch(service: string, watcher: HealthWatcher): () => void {
    let set = this.watchers.get(service);
    if (set === undefined) {
      set = new Set();
      this.watchers.set(service, set);
    }
    set.add(watcher);
    return () => {
      set.delete(watcher);
      if (set.size === 0) {
        this.watchers.delete(service);
      }
    };
  }
}

/** Request messages over 4 MiB are refused before they are decoded, as for the registry's methods (request-limits.ts). */
export const healthServiceDefinition = createServiceDefinition(
  Health,
  {},
  Object.fromEntries(Health.methods.map((method) => [method.localName, requestChecks(method)])),
);

/** grpc.health.v1.Health: Check answers NOT_FOUND for unknown services; Watch streams every change. */
export function createHealthService(health: HealthStatus): ServiceImplementation<(typeof Health)["method"]> {
  return {
    check(call, callback) {
      const status = health.get(call.request.service);
      if (status === undefined) {
        callback(toServiceError(notFound(`unknown service "${cutText(call.request.service, 256)}"`)));
        return;
      }
      callback(null, create(HealthCheckResponseSchema, { status }));
    },
    watch(call) {
      const service = call.request.service;
      let offered: ServingStatus | undefined;
      const sender = new LatestWins<ServingStatus>(
        (status) => writeWithBackpressure(call, create(HealthCheckResponseSchema, { status })).then(() => {}),
        () => {},
      );
      const offer = (status: ServingStatus): void => {
        if (status !== offered) {
          offered = status;
          sender.offer(status);
        }
      };
      const stop = health.watch(service, {
        status: offer,
        end: () => {
          void sender.idle().then(() => {
            if (!call.cancelled) {
              call.end();
            }
          });
        },
      });
      const detach = (): void => {
        stop();
        sender.close();
      };
      call.on("cancelled", detach);
      call.on("close", detach);
      offer(health.get(service) ?? ServingStatus.SERVICE_UNKNOWN);
    },
  };
}
