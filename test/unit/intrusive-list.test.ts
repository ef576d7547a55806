import { test, describe } from "node:test";
import assert from "node:assert/strict";

import { IntrusiveList, type ListLinks } from "../../src/registry/intrusive-list.js";

/** A node in two lists at once, through two pairs of fields, like the cache's entries. */
class Node {
  readonly name: string;
  aPrev: Node | null = null;
  aNext: Node | null = null;
  bPrev: Node | null = null;
  bNext: Node | null = null;

  constructor(name: string) {
    this.name = name;
  }
}

const aLinks: ListLinks<Node> = {
  prev: (node) => node.aPrev,
  next: (node) => node.aNext,
  setPrev: (node, prev) => {
    node.aPrev = prev;
  },
  setNext: (node, next) => {
    node.aNext = next;
  },
};

const bLinks: ListLinks<Node> = {
  prev: (node) => node.bPrev,
  next: (node) => node.bNext,
  setPrev: (node, prev) => {
    node.bPrev = prev;
  },
  setNext: (node, next) => {
    node.bNext = next;
  },
};

function nodes(...names: string[]): Node[] {
  return names.map((name) => new Node(name));
}

/** The names front to back, checked against a walk back to front through the links and the ends. */
function names(list: IntrusiveList<Node>, links: ListLinks<Node> = aLinks): string[] {
  const forward: string[] = [];
  for (let node = list.head; node !== null; node = list.next(node)) {
    forward.push(node.name);
  }
  const backward: string[] = [];
  for (let node = list.tail; node !== null; node = list.prev(node)) {
    backward.push(node.name);
  }
  assert.deepEqual(backward.reverse(), forward, "prev links mirror next links");
  assert.equal(list.size, forward.length, "size counts the nodes reachable from head");
  if (list.head !== null) {
    assert.equal(links.prev(list.head), null, "head has no prev");
  }
  if (list.tail !== null) {
    assert.equal(links.next(list.tail), null, "tail has no next");
  }
  return forward;
}

function unlinked(node: Node): void {
  assert.equal(node.aPrev, null, `${node.name}.aPrev`);
  assert.equal(node.aNext, null, `${node.name}.aNext`);
}

describe("IntrusiveList", () => {
  test("an empty list has no head, no tail, size 0, and iterates nothing", () => {
    const list = new IntrusiveList(aLinks);
    assert.equal(list.head, null);
    assert.equal(list.tail, null);
    assert.equal(list.size, 0);
    assert.deepEqual([...list], []);
  });

  test("pushBack appends, pushFront prepends, insertAfter inserts in the middle and at the back", () => {
    const [a, b, c, d, e] = nodes("a", "b", "c", "d", "e") as [Node, Node, Node, Node, Node];
    const list = new IntrusiveList(aLinks);
    list.pushBack(b);
    assert.deepEqual(names(list), ["b"]);
    assert.equal(list.head, b);
    assert.equal(list.tail, b);
    list.pushBack(d);
    list.pushFront(a);
    assert.deepEqual(names(list), ["a", "b", "d"]);
    list.insertAfter(b, c);
    assert.deepEqual(names(list), ["a", "b", "c", "d"]);
    list.insertAfter(d, e);
    assert.deepEqual(names(list), ["a", "b", "c", "d", "e"]);
    assert.equal(list.tail, e);
  });

  test("pushFront into an empty list sets both ends", () => {
    const [a] = nodes("a") as [Node];
    const list = new IntrusiveList(aLinks);
    list.pushFront(a);
    assert.equal(list.head, a);
    assert.equal(list.tail, a);
    assert.deepEqual(names(list), ["a"]);
  });

  test("remove takes out the head, a middle node, the tail and the last node, and clears their links", () => {
    const [a, b, c, d] = nodes("a", "b", "c", "d") as [Node, Node, Node, Node];
    const list = new IntrusiveList(aLinks);
    for (const node of [a, b, c, d]) {
      list.pushBack(node);
    }
    list.remove(b);
    unlinked(b);
    assert.deepEqual(names(list), ["a", "c", "d"]);
    list.remove(a);
    unlinked(a);
    assert.deepEqual(names(list), ["c", "d"]);
    list.remove(d);
    unlinked(d);
    assert.deepEqual(names(list), ["c"]);
    list.remove(c);
    unlinked(c);
    assert.deepEqual(names(list), []);
    assert.equal(list.head, null);
    assert.equal(list.tail, null);
    list.pushBack(b); // a removed node can be added again
    assert.deepEqual(names(list), ["b"]);
  });

  test("moveToBack and moveToFront from the front, the middle and the back", () => {
    const [a, b, c] = nodes("a", "b", "c") as [Node, Node, Node];
    const list = new IntrusiveList(aLinks);
    for (const node of [a, b, c]) {
      list.pushBack(node);
    }
    list.moveToBack(c); // already there
    assert.deepEqual(names(list), ["a", "b", "c"]);
    list.moveToBack(b);
    assert.deepEqual(names(list), ["a", "c", "b"]);
    list.moveToBack(a);
    assert.deepEqual(names(list), ["c", "b", "a"]);
    list.moveToFront(c); // already there
    assert.deepEqual(names(list), ["c", "b", "a"]);
    list.moveToFront(b);
    assert.deepEqual(names(list), ["b", "c", "a"]);
    list.moveToFront(a);
    assert.deepEqual(names(list), ["a", "b", "c"]);
    assert.equal(list.size, 3);
  });

  test("a one-node list: moves keep it as it is", () => {
    const [a] = nodes("a") as [Node];
    const list = new IntrusiveList(aLinks);
    list.pushBack(a);
    list.moveToBack(a);
    list.moveToFront(a);
    assert.deepEqual(names(list), ["a"]);
  });

  test("iteration while removing: the yielded node, or any node already yielded, can be removed", () => {
    const all = nodes("a", "b", "c", "d", "e");
    const list = new IntrusiveList(aLinks);
    for (const node of all) {
      list.pushBack(node);
    }
    const seen: string[] = [];
    for (const node of list) {
      seen.push(node.name);
      if (node.name !== "c") {
        list.remove(node);
      }
    }
    assert.deepEqual(seen, ["a", "b", "c", "d", "e"]);
    assert.deepEqual(names(list), ["c"]);

    const again = new IntrusiveList(aLinks);
    const fresh = nodes("1", "2", "3");
    for (const node of fresh) {
      again.pushBack(node);
    }
    const walked: string[] = [];
    for (const node of again) {
      walked.push(node.name);
      again.remove(node);
    }
    assert.deepEqual(walked, ["1", "2", "3"]);
    assert.deepEqual(names(again), []);
  });

  test("walking with head/next while removing, as the expiry sweep does", () => {
    const all = nodes("a", "b", "c", "d");
    const list = new IntrusiveList(aLinks);
    for (const node of all) {
      list.pushBack(node);
    }
    let node = list.head;
    while (node !== null) {
      const next = list.next(node);
      if (node.name === "b" || node.name === "d") {
        list.remove(node);
      }
      node = next;
    }
    assert.deepEqual(names(list), ["a", "c"]);
  });

  test("a node in two lists through two pairs of links: each list changes only its own links", () => {
    const [a, b, c] = nodes("a", "b", "c") as [Node, Node, Node];
    const first = new IntrusiveList(aLinks);
    const second = new IntrusiveList(bLinks);
    for (const node of [a, b, c]) {
      first.pushBack(node);
      second.pushFront(node);
    }
    assert.deepEqual(names(first, aLinks), ["a", "b", "c"]);
    assert.deepEqual(names(second, bLinks), ["c", "b", "a"]);
    first.moveToBack(a);
    second.remove(b);
    assert.deepEqual(names(first, aLinks), ["b", "c", "a"]);
    assert.deepEqual(names(second, bLinks), ["c", "a"]);
    assert.equal(b.bPrev, null);
    assert.equal(b.bNext, null);
    assert.equal(b.aPrev, null, "b is first in the a-list");
    assert.equal(b.aNext, c);
  });
});
