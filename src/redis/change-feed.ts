import type { Redis } from "ioredis";
import type { Logger } from "../logger.js";
import { type StoredVersion, decodeStoredVersion } from "./version-codec.js";

/** What the registry's shared state announces to every instance. */
export type RegistryChange =
  | { readonly type: "version"; readonly modelId: string; readonly version: StoredVersion }
  | { readonly type: "deleted"; readonly modelId: string; readonly generation: number }
  | { readonly type: "model"; readonly modelId: string; readonly created: boolean };

export type ChangeListener = (change: RegistryChange) => void;

/**
 * The instance's one subscription to the events channel, dispatched to listeners per model and to
 * listeners of every change. Redis delivers one connection's messages in the order they were
 * published, and a model's commits are published by its scripts in number order, so each model's
 * changes arrive in order. Messages published while the subscriber connection was down are lost:
 * on `resubscribed` (RedisConnection), call RedisRegistryStore.catchUp for what was followed.
 */
export class ChangeFeed {
  private readonly byModel = new Map<string, Set<ChangeListener>>();
  private readonly everything = new Set<ChangeListener>();
  private subscribed: Promise<unknown> | undefined = undefined;

  constructor(
    private readonly subscriber: Redis,
    private readonly channel: string,
    private readonly log: Logger | undefined,
  ) {
    subscriber.on("message", (channel: string, message: string) => {
      if (channel === this.channel) {
        this.dispatch(message);
      }
    });
  }

  /** Subscribes to the channel (once); resolves when Redis confirmed it. */
  start(): Promise<unknown> {
    this.subscribed ??= this.subscriber.subscribe(this.channel).catch((error: unknown) => {
      this.subscribed = undefined;
      throw error;
    });
    return this.subscribed;
  }

  /** Listens to one model's changes; returns the function that stops listening. */
  follow(modelId: string, listener: ChangeListener): () => void {
    let listeners = this.byModel.get(modelId);
    if (listeners === undefined) {
      listeners = new Set();
      this.byModel.set(modelId, listeners);
    }
    listeners.add(listener);
    return () => {
      const current = this.byModel.get(modelId);
      current?.delete(listener);
      if (current?.size === 0) {
        this.byModel.delete(modelId);
      }
    };
  }

  /** Listens to every change (cache invalidation); returns the function that stops listening. */
  followAll(listener: ChangeListener): () => void {
    this.everything.add(listener);
    return () => this.everything.delete(listener);
  }

  /** Models with at least one listener (what to catch up on after a reconnection). */
  followedModels(): string[] {
    return [...this.byModel.keys()];
  }

  private dispatch(message: string): void {
    let change: RegistryChange;
    try {
      change = parseChange(message);
    } catch (error) {
      this.log?.warn({ err: error, message: message.slice(0, 200) }, "ignoring an unreadable registry change notification");
      return;
    }
    for (const listener of this.everything) {
      listener(change);
    }
    for (const listener of this.byModel.get(change.modelId) ?? []) {
      listener(change);
    }
  }
}

interface ChangeJson {
  type: string;
  modelId?: string;
  generation?: number;
  created?: boolean;
  version?: unknown;
}

export function parseChange(message: string): RegistryChange {
  const json = JSON.parse(message) as ChangeJson;
  switch (json.type) {
    case "version": {
      const version = decodeStoredVersion(JSON.stringify(json.version));
      return { type: "version", modelId: version.record.modelId, version };
    }
    case "deleted":
      return { type: "deleted", modelId: String(json.modelId), generation: Number(json.generation) };
    case "model":
      return { type: "model", modelId: String(json.modelId), created: json.created === true };
    default:
      throw new Error(`unknown change type ${JSON.stringify(json.type)}`);
  }
}
