/**
 * A doubly linked list whose links live in the nodes themselves (intrusive): adding, removing and
 * moving a node are O(1) and allocate nothing. A node can be in several lists at once, one per pair
 * of link fields; {@link ListLinks} says which pair a list uses.
 *
 * Owns: the head, the tail, the size, and the node's links for this list.
 * Invariants: a node is in at most one list per pair of links; `size` is the number of nodes reachable
 * from `head`; a node not in the list has both links null (remove clears them). Adding a node that is
 * already in the list (or removing one that is not) corrupts it: the callers know which list a node
 * is in, this does not check (it is the hot path).
 */

/** Reads and writes one pair of link fields of a node (one list's links). */
export interface ListLinks<T> {
  prev(node: T): T | null;
  next(node: T): T | null;
  setPrev(node: T, prev: T | null): void;
  setNext(node: T, next: T | null): void;
}

export class IntrusiveList<T> {
  readonly #links: ListLinks<T>;
  #head: T | null = null;
  #tail: T | null = null;
  #size = 0;

  constructor(links: ListLinks<T>) {
    this.#links = links;
  }

  /** The first node (the front), null when empty. */
  get head(): T | null {
    return this.#head;
  }

  /** The last node (the back), null when empty. */
  get tail(): T | null {
    return this.#tail;
  }

  get size(): number {
    return this.#size;
  }

  /** The node after `node` in this list (towards the back), null at the back. */
  next(node: T): T | null {
    return this.#links.next(node);
  }

  /** The node before `node` in this list (towards the front), null at the front. */
  prev(node: T): T | null {
    return this.#links.prev(node);
  }

  pushBack(node: T): void {
    const links = this.#links;
    const tail = this.#tail;
    links.setNext(node, null);
    links.setPrev(node, tail);
    if (tail === null) {
      this.#head = node;
    } else {
      links.setNext(tail, node);
    }
    this.#tail = node;
    this.#size += 1;
  }

  pushFront(node: T): void {
    const links = this.#links;
    const head = this.#head;
    links.setPrev(node, null);
    links.setNext(node, head);
    if (head === null) {
      this.#tail = node;
    } else {
      links.setPrev(head, node);
    }
    this.#head = node;
    this.#size += 1;
  }

  /** Inserts `node` right after `anchor`, which is in this list. */
  insertAfter(anchor: T, node: T): void {
    const links = this.#links;
    const following = links.next(anchor);
    links.setPrev(node, anchor);
    links.setNext(node, following);
    if (following === null) {
      this.#tail = node;
    } else {
      links.setPrev(following, node);
    }
    links.setNext(anchor, node);
    this.#size += 1;
  }

  /** Takes `node`, which is in this list, out of it; its links become null. */
  remove(node: T): void {
    const links = this.#links;
    const prev = links.prev(node);
    const next = links.next(node);
    if (prev === null) {
      this.#head = next;
    } else {
      links.setNext(prev, next);
    }
    if (next === null) {
      this.#tail = prev;
    } else {
      links.setPrev(next, prev);
    }
    links.setPrev(node, null);
    links.setNext(node, null);
    this.#size -= 1;
  }

  moveToBack(node: T): void {
    const tail = this.#tail;
    if (tail === node || tail === null) {
      return;
    }
    // One pass instead of remove + pushBack: this is the hot path of an LRU touch.
    const links = this.#links;
    const prev = links.prev(node);
    const next = links.next(node);
    if (prev === null) {
      this.#head = next;
    } else {
      links.setNext(prev, next);
    }
    if (next !== null) {
      links.setPrev(next, prev);
    }
    links.setPrev(node, tail);
    links.setNext(node, null);
    links.setNext(tail, node);
    this.#tail = node;
  }

  moveToFront(node: T): void {
    if (this.#head !== node) {
      this.remove(node);
      this.pushFront(node);
    }
  }

  /**
   * The nodes from front to back. Removing the node just yielded (or any node already yielded) is
   * safe: the next one is read before yielding. Not for the hot path (a generator allocates).
   */
  *[Symbol.iterator](): Generator<T, void, undefined> {
    let node = this.#head;
    while (node !== null) {
      const next = this.#links.next(node);
      yield node;
      node = next;
    }
  }
}
