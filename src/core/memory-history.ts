import type { ReplayRequest, ReplayResult } from '../interfaces/broker.interface.js';
import type { Envelope } from './envelope.js';
import { compareIds, type ParsedId } from './message-id.js';

export interface HistoryLimits {
  /** Messages kept per topic. */
  readonly maxCount: number;
  /** How long a message stays replayable, in milliseconds. */
  readonly maxAgeMs: number;
  /** Topics whose history is kept; the one published to least recently goes first. */
  readonly maxTopics: number;
}

/** One topic's retained messages, oldest first, with the newest position evicted from it. */
class TopicHistory {
  entries: Envelope[] = [];
  head = 0;
  evicted: ParsedId | undefined;

  get size(): number {
    return this.entries.length - this.head;
  }

  push(envelope: Envelope, maxCount: number): void {
    this.entries.push(envelope);
    if (this.size > maxCount) this.evictOne();
  }

  pruneOlderThan(cutoffMs: number): void {
    while (this.size > 0 && this.entries[this.head]!.position.ms < cutoffMs) this.evictOne();
  }

  /** Retained envelopes strictly after `after`, oldest first. */
  after(after: ParsedId): Envelope[] {
    let lo = this.head;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareIds(this.entries[mid]!.position, after) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return this.entries.slice(lo);
  }

  private evictOne(): void {
    this.evicted = this.entries[this.head]!.position;
    this.entries[this.head] = undefined as unknown as Envelope;
    this.head += 1;
    // Compact once the dead prefix outweighs the live part, so memory tracks the retained count.
    if (this.head > 64 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}

/**
 * Bounded per-topic history for the in-memory broker. Memory stays bounded by
 * `maxTopics * maxCount` envelopes however many topics come and go.
 *
 * A replay is exact when nothing after the client's id was evicted. Evictions are remembered per
 * topic while its history lives, and folded into one global horizon when a topic's history is
 * dropped; ids from before this process started fall behind that horizon too. An id behind the
 * horizon gets a reset: the server cannot prove that nothing was missed.
 */
export class MemoryHistory {
  private readonly topics = new Map<string, TopicHistory>();
  private horizon: ParsedId;
  private newest: ParsedId;

  constructor(
    private readonly limits: HistoryLimits,
    start: ParsedId,
  ) {
    this.horizon = start;
    this.newest = start;
  }

  get topicCount(): number {
    return this.topics.size;
  }

  append(envelope: Envelope): void {
    const topic = envelope.topic;
    let history = this.topics.get(topic);
    if (history) {
      // Re-insert so that Map order is least-recently-published first.
      this.topics.delete(topic);
    } else {
      history = new TopicHistory();
      if (this.topics.size >= this.limits.maxTopics) this.dropOldestTopic();
    }
    this.topics.set(topic, history);
    history.push(envelope, this.limits.maxCount);
    this.newest = envelope.position;
  }

  /**
   * Each request's messages after its position, merged in id order. A position ahead of every id
   * handed out is unknown; one behind the horizon, the age cutoff or an eviction of its topic is
   * incomplete.
   */
  replay(requests: readonly ReplayRequest[], now = Date.now()): ReplayResult {
    const cutoff = now - this.limits.maxAgeMs;
    const incomplete: string[] = [];
    const unknown: string[] = [];
    const found: Envelope[] = [];
    for (const { topic, after } of requests) {
      if (compareIds(after, this.newest) > 0) {
        unknown.push(topic);
        continue;
      }
      let lost = compareIds(after, this.horizon) < 0 || after.ms < cutoff;
      const history = this.topics.get(topic);
      if (history) {
        history.pruneOlderThan(cutoff);
        if (history.evicted && compareIds(after, history.evicted) < 0) lost = true;
        for (const envelope of history.after(after)) found.push(envelope);
      }
      if (lost) incomplete.push(topic);
    }
    if (requests.length > 1) found.sort((a, b) => compareIds(a.position, b.position));
    return { envelopes: found, incomplete, unknown };
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
    this.topics.clear();
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
    if (history.evicted && compareIds(history.evicted, this.horizon) > 0) this.horizon = history.evicted;
    this.topics.delete(topic);
  }
}
