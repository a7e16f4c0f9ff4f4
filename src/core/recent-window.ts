import { comparePositions, type Position } from '../protocol/ids.js';
import type { Envelope } from './envelope.js';
import { indexAfter, OldestFirst } from './oldest-first.js';

/** How far back the recent window of each watched topic reaches (see {@link RecentWindow}). */
export interface RecentWindowLimits {
  /** Estimated bytes kept across every topic; the oldest message of any topic goes first. */
  readonly maxBytes: number;
  /** Messages kept per topic: the broker's history count, so that the window never reaches further back than the history. */
  readonly maxCount: number;
  /** How long a message stays replayable from the window: the broker's history age. */
  readonly maxAgeMs: number;
}

/**
 * What a kept message costs besides its strings: the envelope, its message object (with the id
 * and timestamp texts), the position, the queue slots. The same estimate as the in-memory
 * history's (memory-history.ts), with the envelope's own fields.
 */
const ENTRY_OVERHEAD_BYTES = 400;

function entryBytes(envelope: Envelope): number {
  const { message } = envelope;
  return ENTRY_OVERHEAD_BYTES + 2 * (message.data.length + message.topic.length + message.event.length);
}

/** One topic's window: the messages delivered here lately, oldest first, and from where they are complete. */
class TopicWindow {
  entries: Envelope[] = [];
  head = 0;
  /**
   * Every message of the topic after this position is in `entries` (or will be, as it is
   * delivered here); undefined while that is not known (after a break, until the core says so).
   */
  from: Position | undefined;
  /** The newest position evicted since the window was last cleared: it is complete after that at best. */
  evicted: Position | undefined;
  /** Set once the topic is no longer watched: its entries in the shared queue are stale. */
  dropped = false;

  get size(): number {
    return this.entries.length - this.head;
  }

  get oldest(): Envelope | undefined {
    return this.size > 0 ? this.entries[this.head] : undefined;
  }

  get newest(): Envelope | undefined {
    return this.size > 0 ? this.entries[this.entries.length - 1] : undefined;
  }

  /** Kept messages strictly after `after`, oldest first. */
  after(after: Position): Envelope[] {
    return this.entries.slice(indexAfter(this.entries, this.head, after));
  }

  /** Drops the oldest kept message; the window is complete only after it from now on. */
  evictOne(): Envelope {
    const envelope = this.entries[this.head]!;
    this.entries[this.head] = undefined as unknown as Envelope;
    this.head += 1;
    this.evicted = envelope.position;
    if (this.from && comparePositions(this.from, envelope.position) < 0) this.from = envelope.position;
    if (this.head > 64 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
    return envelope;
  }
}

/**
 * The recent window of each topic this instance watches: the messages delivered here lately,
 * bounded by bytes across every topic (the oldest message of any topic goes first), by the
 * broker's history count per topic and by its age. A topic's window is complete after a position
 * the recovery core gives it ({@link open}): from there on, every message of the topic reaches
 * this instance live and in order, unless something breaks (a lost link, an overflow of held
 * messages, an unwatch): the core then {@link clear}s it, and opens it again once it knows.
 *
 * A resume from a position inside a complete window is answered from it ({@link after}) without
 * asking the broker: what a reconnect storm mostly asks, since clients resume on an instance
 * whose other clients kept the topic watched.
 */
export class RecentWindow {
  private readonly topics = new Map<string, TopicWindow>();
  /** Every kept message, oldest first, with its window; stale entries (evicted by count, or dropped) are skipped. */
  private readonly order = new OldestFirst<Envelope>();
  private bytes = 0;
  private count = 0;
  /** Advances on every {@link clear}: an opening decided before one must not happen. */
  private clears = 0;

  /**
   * `positionsAreTimes`: a position's `ms` is when it was recorded (a broker whose `clock` is
   * `time`); otherwise (JetStream's sequences) ages come from each message's own time, and a
   * position's age is not judged (the window is complete after it or does not answer).
   */
  constructor(
    readonly limits: RecentWindowLimits,
    private readonly positionsAreTimes = true,
  ) {}

  /** Estimated bytes kept. */
  get retainedBytes(): number {
    return this.bytes;
  }

  /** Messages kept. */
  get retainedCount(): number {
    return this.count;
  }

  /** See {@link clears}: compare before and after an asynchronous step. */
  get generation(): number {
    return this.clears;
  }

  /** Keeps a message delivered here, in its topic's order. */
  append(envelope: Envelope, now = Date.now()): void {
    let window = this.topics.get(envelope.topic);
    if (!window) {
      window = new TopicWindow();
      this.topics.set(envelope.topic, window);
    }
    // Kept already: a broker read ({@link backfill}) can hold what has yet to arrive here live.
    const newest = window.newest;
    if (newest && comparePositions(envelope.position, newest.position) <= 0) return;
    window.entries.push(envelope);
    this.order.push(window, envelope);
    this.bytes += entryBytes(envelope);
    this.count += 1;
    if (window.size > this.limits.maxCount) this.release(window.evictOne());
    const cutoff = now - this.limits.maxAgeMs;
    while (this.bytes > this.limits.maxBytes || (this.order.front()?.time ?? cutoff) < cutoff) {
      const evicted = this.order.evictOldest();
      if (!evicted) break;
      this.release(evicted);
    }
    this.order.compact(this.count);
  }

  /**
   * Every message of `topic` after `from` reaches the window from now on, and those already
   * delivered since the last {@link clear} are in it: it is complete after `from` (or after the
   * newest message evicted since, if later).
   */
  open(topic: string, from: Position): void {
    let window = this.topics.get(topic);
    if (!window) {
      window = new TopicWindow();
      this.topics.set(topic, window);
    }
    window.from = window.evicted && comparePositions(window.evicted, from) > 0 ? window.evicted : from;
  }

  /**
   * The messages of `topic` after `after` when its window is complete from there, and `after` is
   * no newer than `last` (the newest position delivered here) nor older than the history's age;
   * undefined otherwise (ask the broker).
   */
  after(topic: string, after: Position, last: Position, now = Date.now()): Envelope[] | undefined {
    const window = this.topics.get(topic);
    const from = window?.from;
    if (!window || !from || comparePositions(after, from) < 0 || comparePositions(after, last) > 0) return undefined;
    if (this.positionsAreTimes && comparePositions(after, { ms: now - this.limits.maxAgeMs, seq: 0 }) < 0) return undefined;
    return window.after(after);
  }

  /**
   * Extends `topic`'s window back to `from`, given every message of the topic in (`from`,
   * `upTo`], oldest first (an exact broker read): a reconnect storm's clients resume from nearly
   * the same positions, on topics this instance watches only since the first of them came, so one
   * read answers the rest. Only what the read holds up to where the window was complete is added:
   * the rest reaches this instance live, and a window must never hold more than has arrived here
   * (a catch-up answered from windows is one snapshot of the live stream). Nothing changes (false)
   * unless the window is complete after a position between `from` and `upTo`. Rebuilt in position
   * order, so the shared eviction queue keeps its order per topic.
   */
  backfill(topic: string, from: Position, read: readonly Envelope[], upTo: Position): boolean {
    const window = this.topics.get(topic);
    const complete = window?.from;
    if (!window || !complete || comparePositions(complete, upTo) > 0 || comparePositions(from, complete) >= 0) return false;
    const kept = window.after(complete);
    this.drop(topic);
    for (const envelope of read) {
      if (comparePositions(envelope.position, complete) > 0) break;
      this.append(envelope);
    }
    for (const envelope of kept) this.append(envelope);
    this.open(topic, from);
    return true;
  }

  /** Whether `topic`'s window is complete after some position (tests). */
  isOpen(topic: string): boolean {
    return this.topics.get(topic)?.from !== undefined;
  }

  /** Forgets `topic` (no longer watched). */
  drop(topic: string): void {
    const window = this.topics.get(topic);
    if (!window) return;
    this.topics.delete(topic);
    this.empty(window);
  }

  /** A break: no window is complete any more, and what they held is dropped. */
  clear(): void {
    this.clears += 1;
    for (const window of this.topics.values()) this.empty(window);
    this.topics.clear();
    this.order.clear();
  }

  /** Releases everything `window` holds; its entries in the shared order become stale. */
  private empty(window: TopicWindow): void {
    window.dropped = true;
    while (window.size > 0) this.release(window.evictOne());
  }

  private release(envelope: Envelope): void {
    this.bytes -= entryBytes(envelope);
    this.count -= 1;
  }
}
