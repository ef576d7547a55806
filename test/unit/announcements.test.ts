import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { VersionRecord } from "../../src/domain/index.js";
import { Announcements } from "../../src/state/announcements.js";

const version = (versionNumber: number, dataHash = `hash-${versionNumber}`, modelId = "m"): VersionRecord => ({
  modelId,
  versionNumber,
  creationTimestamp: 1_000n * BigInt(versionNumber),
  archived: false,
  dataHash,
  dataSize: 10 * versionNumber,
  userData: {},
});

/** Announcements whose hooks and listeners write what they hear into `events`, in order; generation reads wait for `replyGeneration`. */
function recorded(): {
  announcements: Announcements;
  events: string[];
  replyGeneration: (reply: number | Error) => Promise<void>;
} {
  const events: string[] = [];
  const pendingReads: { resolve: (generation: number) => void; reject: (error: Error) => void }[] = [];
  const announcements = new Announcements({
    readGeneration: (modelId) => {
      events.push(`read generation of ${modelId}`);
      return new Promise((resolve, reject) => pendingReads.push({ resolve, reject }));
    },
    suspectLoss: (modelId) => events.push(`suspect loss of ${modelId}`),
  });
  announcements.onVersionCommitted((committed) => events.push(`committed ${committed.modelId} ${committed.versionNumber} ${committed.dataHash}`));
  announcements.onModelDeleted((modelId) => events.push(`deleted ${modelId}`));
  announcements.onVersionsLost((loss) => events.push(`lost ${loss.modelId} ${loss.lastSeen} → ${loss.latest}`));
  /** Settles the oldest generation read still waiting, then lets its handler run. */
  const replyGeneration = async (reply: number | Error): Promise<void> => {
    const read = pendingReads.shift();
    assert.ok(read !== undefined, "a generation read is waiting");
    if (reply instanceof Error) {
      read.reject(reply);
    } else {
      read.resolve(reply);
    }
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { announcements, events, replyGeneration };
}

describe("Announcements", () => {
  test("each version is announced once, in number order: a repeat or one behind is not announced again", () => {
    const { announcements, events } = recorded();
    announcements.announceVersion(version(1));
    announcements.announceVersion(version(2)); // the feed
    announcements.announceVersion(version(2), 0); // the own commit's reply
    announcements.announceVersion(version(1)); // a notification behind
    announcements.announceVersion(version(3));
    assert.deepEqual(events, ["read generation of m", "committed m 1 hash-1", "committed m 2 hash-2", "suspect loss of m", "committed m 3 hash-3"]);
  });

  test("a version behind one read, or another under its number, asks for a loss check before any listener hears of it", () => {
    const { announcements, events } = recorded();
    announcements.follow("m", version(5), false);
    announcements.announceVersion(version(4)); // behind the read: suspect, yet never announced so far
    announcements.announceVersion(version(5)); // the one read: nothing to suspect
    announcements.announceVersion(version(5, "other")); // another under its number
    assert.deepEqual(events, ["read generation of m", "suspect loss of m", "committed m 4 hash-4", "committed m 5 hash-5", "suspect loss of m"]);
  });

  test("a deletion is announced once per generation and forgets the model: its numbers are announced again, but not a version of the deleted model", () => {
    const { announcements, events } = recorded();
    announcements.announceVersion(version(1), 0);
    announcements.announceVersion(version(2), 0);
    announcements.announceDeleted("m", 1);
    announcements.announceDeleted("m", 1); // the feed after the own deletion
    assert.equal(announcements.deletionsAnnounced("m"), 1);
    assert.equal(announcements.lastSeen("m"), undefined);
    assert.equal(announcements.catchUpFrom("m"), undefined);
    announcements.announceVersion(version(2), 0); // a commit of the deleted model, replied late
    announcements.announceVersion(version(1, "again"), 1); // the model created again
    announcements.announceVersion(version(1, "again")); // the feed
    assert.deepEqual(events, ["read generation of m", "committed m 1 hash-1", "committed m 2 hash-2", "deleted m", "read generation of m", "committed m 1 again"]);
  });

  test("a catch-up starts at the version read when following began, raised by versions announced, not by reads", () => {
    const { announcements } = recorded();
    announcements.follow("m", version(2), false);
    announcements.follow("m", version(3), false);
    assert.equal(announcements.catchUpFrom("m"), 2);
    assert.equal(announcements.lastSeen("m")?.versionNumber, 3);
    announcements.announceVersion(version(4));
    announcements.follow("n", undefined, false);
    assert.deepEqual([...announcements.followedModels()], [
      ["m", 4],
      ["n", 0],
    ]);
    assert.equal(announcements.lastSeen("n"), undefined);
  });

  test("the model's generation is read as following begins, one read at a time; a reply behind a deletion announced meanwhile is dropped", async () => {
    const { announcements, events, replyGeneration } = recorded();
    announcements.follow("m", version(1), false);
    announcements.follow("m", version(2), false);
    assert.deepEqual(events, ["read generation of m"]);
    await replyGeneration(2);
    assert.equal(announcements.followedGeneration("m"), 2);

    announcements.follow("n", version(1, "n1", "n"), false);
    announcements.announceDeleted("n", 3);
    announcements.follow("n", undefined, false);
    await replyGeneration(2); // read before the deletion
    assert.equal(announcements.followedGeneration("n"), undefined);
    await replyGeneration(3);
    assert.equal(announcements.followedGeneration("n"), 3);

    announcements.follow("o", undefined, false);
    await replyGeneration(new Error("Redis is unreachable"));
    assert.equal(announcements.followedGeneration("o"), undefined);
    announcements.followInGeneration("o", 4);
    assert.equal(announcements.followedGeneration("o"), 4);
    assert.deepEqual(events, ["read generation of m", "read generation of n", "deleted n", "read generation of n", "read generation of o"]);
  });

  test("a generation read that failed is made again at the model's next follow, and no more once it is known", async () => {
    const { announcements, events, replyGeneration } = recorded();
    announcements.follow("p", version(1), false);
    await replyGeneration(new Error("Redis is unreachable"));
    assert.equal(announcements.followedGeneration("p"), undefined);
    announcements.follow("p", version(2), true);
    announcements.follow("p", version(3), true); // the second read is still in flight: not a third
    await replyGeneration(5);
    assert.equal(announcements.followedGeneration("p"), 5);
    announcements.follow("p", version(4), true);
    assert.deepEqual(events, ["read generation of p", "read generation of p"]);
  });

  test("after a loss, what comes after Redis's latest is announced, also under a number announced before", () => {
    const { announcements, events } = recorded();
    announcements.announceVersion(version(1));
    announcements.announceVersion(version(2));
    announcements.announceVersion(version(3));
    announcements.resetAfterLoss("m", version(1));
    announcements.announceLoss({ modelId: "m", lastSeen: 3, latest: 1 });
    assert.equal(announcements.catchUpFrom("m"), 1);
    assert.equal(announcements.lastSeen("m")?.versionNumber, 1);
    announcements.announceVersion(version(2, "handed out again"));
    announcements.resetAfterLoss("m", undefined);
    assert.equal(announcements.catchUpFrom("m"), 0);
    assert.equal(announcements.lastSeen("m"), undefined);
    announcements.announceVersion(version(1, "after an empty Redis"));
    assert.deepEqual(events, [
      "read generation of m",
      "committed m 1 hash-1",
      "committed m 2 hash-2",
      "committed m 3 hash-3",
      "lost m 3 → 1",
      "committed m 2 handed out again",
      "committed m 1 after an empty Redis",
    ]);
  });

  test("the feed's changes: versions and deletions announced, model changes not; an unsubscribed listener hears nothing", () => {
    const { announcements, events } = recorded();
    const heard: string[] = [];
    const unsubscribe = announcements.onVersionCommitted((committed) => heard.push(`${committed.versionNumber}`));
    announcements.announceChange({ type: "version", modelId: "m", version: { record: version(1), chunkCount: 0, storedAtMs: 0 } });
    announcements.announceChange({ type: "model", modelId: "m", created: false });
    unsubscribe();
    announcements.announceChange({ type: "version", modelId: "m", version: { record: version(2), chunkCount: 0, storedAtMs: 0 } });
    announcements.announceChange({ type: "deleted", modelId: "m", generation: 1 });
    assert.deepEqual(heard, ["1"]);
    assert.deepEqual(events, ["read generation of m", "committed m 1 hash-1", "committed m 2 hash-2", "deleted m"]);
  });
});
