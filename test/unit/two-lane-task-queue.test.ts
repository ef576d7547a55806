import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { TaskQueue } from "piscina";
import { TwoLaneTaskQueue } from "../../src/worker-pool/two-lane-task-queue.js";

type QueuedTask = Parameters<TaskQueue["push"]>[0];

/** The queue only reads a task's name; piscina's real tasks carry more. */
function task(name: string, id: number): QueuedTask & { readonly label: string } {
  return { name, label: `${name}#${id}` } as unknown as QueuedTask & { readonly label: string };
}

function drain(queue: TwoLaneTaskQueue): string[] {
  const labels: string[] = [];
  for (let next = queue.shift(); next !== null; next = queue.shift()) {
    labels.push((next as unknown as { label: string }).label);
  }
  return labels;
}

describe("TwoLaneTaskQueue", () => {
  test("urgent tasks come out before the others, each lane first in first out", () => {
    const queue = new TwoLaneTaskQueue(new Set(["writeFile"]));
    queue.push(task("hash", 1));
    queue.push(task("writeVersion", 2));
    queue.push(task("writeFile", 3));
    queue.push(task("hash", 4));
    queue.push(task("writeFile", 5));
    assert.equal(queue.size, 5);
    assert.deepEqual(drain(queue), ["writeFile#3", "writeFile#5", "hash#1", "writeVersion#2", "hash#4"]);
    assert.equal(queue.size, 0);
    assert.equal(queue.shift(), null);
  });

  test("remove takes a task out of its own lane; removing one that is not queued changes nothing", () => {
    const queue = new TwoLaneTaskQueue(new Set(["writeFile"]));
    const urgent = task("writeFile", 1);
    const normal = task("hash", 2);
    queue.push(urgent);
    queue.push(normal);
    queue.push(task("hash", 3));
    queue.remove(normal);
    queue.remove(urgent);
    queue.remove(task("hash", 9));
    assert.equal(queue.size, 1);
    assert.deepEqual(drain(queue), ["hash#3"]);
  });

  test("a task without a name goes to the ordinary lane", () => {
    const queue = new TwoLaneTaskQueue(new Set(["writeFile"]));
    queue.push({ label: "anonymous" } as unknown as QueuedTask);
    queue.push(task("writeFile", 1));
    assert.deepEqual(drain(queue), ["writeFile#1", "anonymous"]);
  });
});
