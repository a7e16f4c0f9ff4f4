import { BROADCAST_TOPIC } from '../protocol/topics.js';

/** One level of the trie: the next literal segments, `*`, and what ends here or at a `#`. */
class Node<T> {
  readonly literal = new Map<string, Node<T>>();
  star: Node<T> | undefined;
  /** Patterns ending at this node. */
  readonly here = new Map<string, T>();
  /** Patterns whose next (last) segment is `#`: they match here and everything below. */
  readonly rest = new Map<string, T>();

  get empty(): boolean {
    return this.literal.size === 0 && !this.star && this.here.size === 0 && this.rest.size === 0;
  }
}

/**
 * The patterns a process holds, matched against a topic by walking its segments in a trie: the
 * cost follows the topic's depth and the patterns that share its prefixes, not the number of
 * patterns (bench: `pattern-routing`). Written by hand: no library matches this grammar
 * (docs/protocol.md, "Pattern subscriptions"), and a list of regular expressions is linear in
 * the number of patterns.
 */
export class PatternIndex<T> {
  private readonly root = new Node<T>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds `pattern` with its value (replacing an earlier one). */
  set(pattern: string, value: T): void {
    const segments = pattern.split('/');
    let node = this.root;
    for (let i = 0; i < segments.length; i++) {
      const segment = segments[i]!;
      if (segment === '#') {
        if (!node.rest.has(pattern)) this.count += 1;
        node.rest.set(pattern, value);
        return;
      }
      node = segment === '*' ? (node.star ??= new Node()) : getOrAdd(node.literal, segment);
    }
    if (!node.here.has(pattern)) this.count += 1;
    node.here.set(pattern, value);
  }

  get(pattern: string): T | undefined {
    const { node, last } = this.find(pattern);
    return last === '#' ? node?.rest.get(pattern) : node?.here.get(pattern);
  }

  delete(pattern: string): boolean {
    const segments = pattern.split('/');
    const path: Array<[Node<T>, string]> = [];
    let node: Node<T> | undefined = this.root;
    for (const segment of segments) {
      if (segment === '#') break;
      path.push([node, segment]);
      node = segment === '*' ? node.star : node.literal.get(segment);
      if (!node) return false;
    }
    const removed = segments[segments.length - 1] === '#' ? node.rest.delete(pattern) : node.here.delete(pattern);
    if (!removed) return false;
    this.count -= 1;
    // Prune the branches left empty, deepest first.
    for (let i = path.length - 1; i >= 0 && node.empty; i--) {
      const [parent, segment] = path[i]!;
      if (segment === '*') parent.star = undefined;
      else parent.literal.delete(segment);
      node = parent;
    }
    return true;
  }

  /** The values of every pattern `topic` matches (none for the broadcast topic). */
  match(topic: string): T[] {
    const found: T[] = [];
    if (this.count === 0 || topic === BROADCAST_TOPIC) return found;
    collect(this.root, topic.split('/'), 0, found);
    return found;
  }

  /** Every pattern with its value. */
  entries(): Array<[string, T]> {
    const all: Array<[string, T]> = [];
    const walk = (node: Node<T>) => {
      all.push(...node.here, ...node.rest);
      for (const child of node.literal.values()) walk(child);
      if (node.star) walk(node.star);
    };
    walk(this.root);
    return all;
  }

  private find(pattern: string): { node: Node<T> | undefined; last: string } {
    const segments = pattern.split('/');
    let node: Node<T> | undefined = this.root;
    for (const segment of segments) {
      if (segment === '#' || !node) break;
      node = segment === '*' ? node.star : node.literal.get(segment);
    }
    return { node, last: segments[segments.length - 1]! };
  }
}

function collect<T>(node: Node<T>, segments: readonly string[], depth: number, found: T[]): void {
  for (const value of node.rest.values()) found.push(value);
  if (depth === segments.length) {
    for (const value of node.here.values()) found.push(value);
    return;
  }
  const segment = segments[depth]!;
  const literal = node.literal.get(segment);
  if (literal) collect(literal, segments, depth + 1, found);
  if (node.star && segment !== '') collect(node.star, segments, depth + 1, found);
}

function getOrAdd<T>(map: Map<string, Node<T>>, key: string): Node<T> {
  let node = map.get(key);
  if (!node) map.set(key, (node = new Node()));
  return node;
}
