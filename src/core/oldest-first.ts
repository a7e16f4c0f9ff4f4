import { comparePositions, type Position } from '../protocol/ids.js';

/** A topic's retained items, oldest first, as {@link OldestFirst} sees them. */
export interface RetainedList<T> {
  /** Set once the whole list is dropped: its entries in the queue are stale. */
  readonly dropped: boolean;
  /** The oldest item the list still holds. */
  readonly oldest: T | undefined;
  /** The newest position it evicted: an entry at or before it is stale. */
  readonly evicted: Position | undefined;
  /** Evicts its oldest item. */
  evictOne(): unknown;
}

/**
 * Every retained item of every topic in the order it was kept, with its topic's list: the front
 * is the oldest item still retained anywhere, unless stale (evicted by its list already, or its
 * list dropped). Stale entries are skipped at the front and compacted away once they outnumber
 * the retained items, so a bound across topics (bytes, age) evicts in O(1) amortised. Used by the
 * in-memory history and the recent window; hand-written because a heap would pay O(log n) for an
 * order that appending already gives.
 */
export class OldestFirst<T extends { readonly position: Position }> {
  private queue: Array<{ readonly list: RetainedList<T>; readonly item: T }> = [];
  private head = 0;

  /** Entries held, stale ones included (what compaction bounds). */
  get size(): number {
    return this.queue.length - this.head;
  }

  push(list: RetainedList<T>, item: T): void {
    this.queue.push({ list, item });
  }

  /** The oldest item still retained anywhere (stale entries at the front dropped). */
  front(): T | undefined {
    while (this.head < this.queue.length) {
      const { list, item } = this.queue[this.head]!;
      if (!list.dropped && list.oldest === item) return item;
      this.queue[this.head] = undefined as never;
      this.head += 1;
    }
    return undefined;
  }

  /** Evicts the oldest retained item of any list and answers it; `undefined` when none is left. */
  evictOldest(): T | undefined {
    while (this.head < this.queue.length) {
      const { list, item } = this.queue[this.head]!;
      this.queue[this.head] = undefined as never;
      this.head += 1;
      if (!list.dropped && list.oldest === item) {
        list.evictOne();
        return item;
      }
    }
    return undefined;
  }

  /** Drops the consumed front, and the stale entries once they outnumber the `retained` items. */
  compact(retained: number): void {
    const length = this.queue.length - this.head;
    if (this.head > 1024 && this.head > length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    if (length < 1024 || length < 2 * retained) return;
    this.queue = this.queue
      .slice(this.head)
      .filter(({ list, item }) => !list.dropped && !(list.evicted !== undefined && comparePositions(item.position, list.evicted) <= 0));
    this.head = 0;
  }

  clear(): void {
    this.queue = [];
    this.head = 0;
  }
}

/**
 * The first index from `from` on whose item is after `position` (with `orAt`, at or after it),
 * in a list in position order: a binary search, as the per-topic lists of the history and the
 * recent window read them.
 */
export function indexAfter(items: ReadonlyArray<{ readonly position: Position }>, from: number, position: Position, orAt = false): number {
  let lo = from;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const order = comparePositions(items[mid]!.position, position);
    if (order < 0 || (order === 0 && !orAt)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
