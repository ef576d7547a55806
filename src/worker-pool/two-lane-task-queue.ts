import type { PiscinaTask, TaskQueue } from "piscina";

type QueuedTask = Parameters<TaskQueue["push"]>[0];

/**
 * Piscina's task queue with two lanes, first in first out within each: tasks whose name is urgent
 * run before every other queued task. The pool's other tasks (hashing an upload, writing a
 * version's files) take milliseconds to seconds each; a small metadata write queued behind them
 * made a CreateOrUpdateModel wait for every upload in flight (soak: p50 181–196 ms, 81–87 ms with
 * the urgent lane). Urgent tasks must stay small and rare, or they would starve the rest.
 */
export class TwoLaneTaskQueue implements TaskQueue {
  readonly #urgent: QueuedTask[] = [];
  readonly #normal: QueuedTask[] = [];

  constructor(private readonly urgentNames: ReadonlySet<string>) {}

  get size(): number {
    return this.#urgent.length + this.#normal.length;
  }

  push(task: QueuedTask): void {
    this.#laneOf(task).push(task);
  }

  shift(): QueuedTask | null {
    return this.#urgent.shift() ?? this.#normal.shift() ?? null;
  }

  remove(task: QueuedTask): void {
    const lane = this.#laneOf(task);
    const index = lane.indexOf(task);
    if (index >= 0) {
      lane.splice(index, 1);
    }
  }

  #laneOf(task: QueuedTask): QueuedTask[] {
    const { name } = task as Partial<PiscinaTask>;
    return name !== undefined && this.urgentNames.has(name) ? this.#urgent : this.#normal;
  }
}
