import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { setImmediate as nextTurn } from "node:timers/promises";
import { createFsArchiveStore, inlineFileWriter } from "../../src/archive/index.js";
import { Code, type RegistryError } from "../../src/errors/index.js";
import { type ModelRecord, Registry, type VersionRecord } from "../../src/registry/index.js";
import { type RegistryState, createInProcessRegistryState } from "../../src/state/index.js";
import { createLogger } from "../../src/logger.js";
import { testRegistryOptions } from "../support/registry-options.js";

/**
 * Shared mode, where another instance creates models: a VersionUpdate whose model lookup is in flight
 * while an earlier lookup of the same model (made before another instance created it) answers
 * "absent" and drops the model's actor. The later subscriber must end up on the actor that
 * announcements reach; before the fix it stayed on the dropped one and never received a version.
 * The lookups' replies are held and released in that order (as a slow Redis reply would).
 */
test("a VersionUpdate subscribed while an earlier lookup drops the model's actor receives the versions committed next", async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), "mr-subscribe-race-"));
  // Registered before the closes that follow (after hooks run in that order): retried while their background writes end.
  t.after(() => rm(root, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }));
  const archive = createFsArchiveStore({ root, writer: inlineFileWriter });
  const state = createInProcessRegistryState({ archive, log: createLogger("silent"), bootId: "boot-a" });
  /** getModel answers as of its call, delivered when its gate opens. */
  const gates: (() => void)[] = [];
  let holding = false;
  const heldState = new Proxy(state, {
    get(target, property) {
      if (property === "getModel" && holding) {
        return (modelId: string): Promise<ModelRecord | undefined> => {
          const answer = target.getModel(modelId);
          return new Promise<void>((open) => gates.push(open)).then(() => answer);
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  }) as RegistryState;
  const registry = await Registry.open({ ...(await testRegistryOptions(archive)), state: heldState });
  t.after(() => registry.close());

  const received: number[] = [];
  const sink = (into: number[], ended: RegistryError[]) => ({
    send: async (version: VersionRecord) => void into.push(version.versionNumber),
    end: (reason: RegistryError) => void ended.push(reason),
  });
  holding = true;
  const firstEnded: RegistryError[] = [];
  const first = registry.subscribe("m", sink([], firstEnded));
  await nextTurn();
  // Another instance creates the model after the first lookup read it absent.
  await state.putModel({ modelId: "m", userData: {} });
  const secondEnded: RegistryError[] = [];
  const second = registry.subscribe("m", sink(received, secondEnded));
  await nextTurn();
  assert.equal(gates.length, 2);
  holding = false;
  gates[0]?.();
  await assert.rejects(first, (error: RegistryError) => error.code === Code.NOT_FOUND && error.message === 'model "m" not found');
  gates[1]?.();
  const subscription = await second;

  // Another instance commits version 1: announced through the state.
  const claim = await state.claimVersionNumber("m");
  assert.ok(claim !== undefined);
  await claim.commit({ modelId: "m", versionNumber: claim.versionNumber, creationTimestamp: 1n, archived: false, dataHash: "", dataSize: 0, userData: {} });
  for (let turn = 0; turn < 10 && received.length === 0; turn++) {
    await nextTurn();
  }
  assert.deepEqual(received, [1]);
  assert.deepEqual(secondEnded, []);
  registry.unsubscribe("m", subscription);
});
