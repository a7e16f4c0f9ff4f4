import type { BrokerRecord, TopicRead, TopicsAfter } from '../interfaces/broker.interface.js';
import { comparePositions, type Position } from '../protocol/ids.js';
import { indexAfter, OldestFirst } from './oldest-first.js';

export interface HistoryLimits {
  /** Messages kept per topic. */
  readonly maxCount: number;
  /** How long a message stays replayable, in milliseconds. */
  readonly maxAgeMs: number;
  /** Topics whose history is kept; the one published to least recently goes first. */
  readonly maxTopics: number;
  /**
   * Bytes of messages kept in all (estimated: data, topic and event as UTF-16, plus a fixed cost
   * per message); the oldest message of any topic goes first. Default 64 MiB.
   */
  readonly maxBytes?: number;
}

/** Messages and estimated bytes retained across every topic. */
interface Totals {
  bytes: number;
  count: number;
}

/** The default of {@link HistoryLimits.maxBytes}. */
export const DEFAULT_HISTORY_BYTES = 64 * 1024 * 1024;
/**
 * What a retained message costs besides its strings: the record, the message object, the id's
 * position, queue slots (bench/history-memory.ts measures about 580 B in all with 100 B of data).
 */
const ENTRY_OVERHEAD_BYTES = 320;

function entryBytes(record: BrokerRecord): number {
  // The id's text is about 16 characters.
  return ENTRY_OVERHEAD_BYTES + 2 * (record.data.length + record.topic.length + record.event.length + 16);
}

/** One topic's retained messages, oldest first, with the newest position evicted from it. */
class TopicHistory {
  entries: BrokerRecord[] = [];
  head = 0;
  evicted: Position | undefined;
  /** Set once the whole history is dropped: its entries in the global queue are stale. */
  dropped = false;

  /** `totals` are the history-wide counts, kept by every push and eviction. */
  constructor(private readonly totals: Totals) {}

  get size(): number {
    return this.entries.length - this.head;
  }

  /** The oldest retained message, if any. */
  get oldest(): BrokerRecord | undefined {
    return this.size > 0 ? this.entries[this.head] : undefined;
  }

  push(record: BrokerRecord, maxCount: number): void {
    this.entries.push(record);
    this.totals.bytes += entryBytes(record);
    this.totals.count += 1;
    if (this.size > maxCount) this.evictOne();
  }

  pruneOlderThan(cutoffMs: number): void {
    while (this.size > 0 && this.entries[this.head]!.position.ms < cutoffMs) this.evictOne();
  }

  /** Forgets every retained message (the history is dropped). */
  release(): void {
    while (this.size > 0) this.evictOne();
    this.dropped = true;
  }

  /** Retained records strictly after `after`, oldest first. */
  after(after: Position): BrokerRecord[] {
    return this.entries.slice(indexAfter(this.entries, this.head, after));
  }

  /** The newest `limit` retained records strictly before `before` (all when none), oldest first. */
  tail(limit: number, before: Position | undefined): BrokerRecord[] {
    const end = before ? indexAfter(this.entries, this.head, before, true) : this.entries.length;
    return this.entries.slice(Math.max(this.head, end - limit), end);
  }

  evictOne(): void {
    const record = this.entries[this.head]!;
    this.totals.bytes -= entryBytes(record);
    this.totals.count -= 1;
    this.evicted = record.position;
    this.entries[this.head] = undefined as unknown as BrokerRecord;
    this.head += 1;
    // Compact once the dead prefix outweighs the live part, so memory tracks the retained count.
    if (this.head > 64 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}

/**
 * Bounded per-topic history for the in-memory broker: at most `maxCount` messages per topic, none
 * older than `maxAgeMs`, at most `maxBytes` in all (the oldest message of any topic goes first:
 * O(1) per eviction through one queue of every retained message in publication order), and at
 * most `maxTopics` topics (unlimited by default: memory is bounded by bytes, so a deployment with
 * more live topics than a fixed count never evicts a topic on every publish).
 *
 * A replay is exact when nothing after the client's id was evicted. Evictions are remembered per
 * topic while its history lives, and folded into one global horizon when a topic's history is
 * dropped; ids from before this process started fall behind that horizon too. An id behind the
 * horizon gets a reset: the server cannot prove that nothing was missed.
 */
export class MemoryHistory {
  private readonly topics = new Map<string, TopicHistory>();
  private horizon: Position;
  private newest: Position;
  private readonly totals: Totals = { bytes: 0, count: 0 };
  private readonly maxBytes: number;
  /** Every message appended, oldest first, with its topic's history: the bytes bound evicts from its front. */
  private readonly order = new OldestFirst<BrokerRecord>();

  constructor(
    private readonly limits: HistoryLimits,
    start: Position,
  ) {
    this.horizon = start;
    this.newest = start;
    this.maxBytes = limits.maxBytes ?? DEFAULT_HISTORY_BYTES;
  }

  get topicCount(): number {
    return this.topics.size;
  }

  /** Estimated bytes of the messages retained (see {@link HistoryLimits.maxBytes}). */
  get retainedBytes(): number {
    return this.totals.bytes;
  }

  append(record: BrokerRecord): void {
    const topic = record.topic;
    let history = this.topics.get(topic);
    if (!history) {
      history = new TopicHistory(this.totals);
      if (this.topics.size >= this.limits.maxTopics) this.dropOldestTopic();
      this.topics.set(topic, history);
    } else if (Number.isFinite(this.limits.maxTopics)) {
      // Re-insert so that Map order is least-recently-published first (only a topic bound needs it).
      this.topics.delete(topic);
      this.topics.set(topic, history);
    }
    history.push(record, this.limits.maxCount);
    this.order.push(history, record);
    this.newest = record.position;
    while (this.totals.bytes > this.maxBytes && this.order.evictOldest());
    this.order.compact(this.totals.count);
  }

  /**
   * Each request's topic's records after its position, with the floor from which its history is
   * complete: the global horizon, the age cutoff, or the newest record its topic evicted.
   */
  read(requests: ReadonlyArray<{ readonly topic: string; readonly after: Position }>, now = Date.now()): TopicRead[] {
    const cutoff = now - this.limits.maxAgeMs;
    return requests.map(({ topic, after }) => {
      let floor = later(this.horizon, { ms: cutoff, seq: 0 });
      const history = this.topics.get(topic);
      if (history) {
        history.pruneOlderThan(cutoff);
        if (history.evicted) floor = later(floor, history.evicted);
      }
      const records = history && comparePositions(after, this.newest) <= 0 ? history.after(after) : [];
      return { topic, records, floor, readAt: this.newest, limit: this.newest };
    });
  }

  /**
   * Topics whose newest retained record is after `after` (pattern resumes), complete from the
   * global horizon and the age cutoff on: a topic dropped whole moved the horizon past its records.
   */
  topicsAfter(after: Position, now = Date.now()): TopicsAfter {
    const topics: string[] = [];
    for (const [topic, history] of this.topics) {
      const newest = history.entries[history.entries.length - 1];
      if (history.size > 0 && newest && comparePositions(newest.position, after) > 0) topics.push(topic);
    }
    const floor = later(this.horizon, { ms: now - this.limits.maxAgeMs, seq: 0 });
    return { topics, floor, readAt: this.newest, limit: this.newest };
  }

  /**
   * Each request's topic's newest records (at most `limit`, strictly before `before` when given),
   * oldest first; expired ones are dropped first, as for {@link read}.
   */
  tail(requests: ReadonlyArray<{ readonly topic: string; readonly limit: number; readonly before?: Position }>, now = Date.now()): BrokerRecord[][] {
    const cutoff = now - this.limits.maxAgeMs;
    return requests.map(({ topic, limit, before }) => {
      const history = this.topics.get(topic);
      if (!history || limit < 1) return [];
      history.pruneOlderThan(cutoff);
      return history.tail(limit, before);
    });
  }

  /** The newest position appended (or the start). */
  get newestPosition(): Position {
    return this.newest;
  }

  /** Drops expired messages, and the histories left empty, so idle topics cost nothing. */
  sweep(now = Date.now()): void {
    const cutoff = now - this.limits.maxAgeMs;
    for (const [topic, history] of this.topics) {
      history.pruneOlderThan(cutoff);
      if (history.size === 0) this.drop(topic, history);
    }
  }

  clear(): void {
    for (const history of this.topics.values()) history.release();
    this.topics.clear();
    this.order.clear();
  }

  private dropOldestTopic(): void {
    const first = this.topics.entries().next();
    if (!first.done) {
      const [topic, history] = first.value;
      const last = history.size > 0 ? history.entries[history.entries.length - 1]!.position : undefined;
      if (last) history.evicted = last;
      this.drop(topic, history);
    }
  }

  private drop(topic: string, history: TopicHistory): void {
    history.release();
    if (history.evicted && comparePositions(history.evicted, this.horizon) > 0) this.horizon = history.evicted;
    this.topics.delete(topic);
  }
}

function later(a: Position, b: Position): Position {
  return comparePositions(a, b) >= 0 ? a : b;
}
