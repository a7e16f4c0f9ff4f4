import type { PushletBroker } from '../interfaces/broker.interface.js';
import type { Envelope } from './envelope.js';
import { compareIds, type ParsedId } from './message-id.js';
import type { ChannelListener, TopicRegistry } from './topic-registry.js';

/** Where a feed hands its messages: a transport's connection or a server-side observer. */
export interface FeedSink {
  deliver(envelope: Envelope): void;
  /** Messages after the client's id may be missing; sent before any replayed or live message. */
  reset(topics: readonly string[]): void;
  /**
   * Backpressure for replays: a promise that resolves once the sink can take more, or
   * `undefined` when it can now. A replay may be far larger than a connection's buffer, so it is
   * written at the pace the client reads, not all at once.
   */
  whenWritable?(): Promise<void> | undefined;
}

/** One topic of one feed: its live subscription and the newest position delivered from it. */
class TopicCursor implements ChannelListener {
  ready: Promise<void> = Promise.resolve();
  last: ParsedId | undefined;
  /** Live messages held while the feed replays; undefined once live. */
  buffer: Envelope[] | undefined;
  constructor(
    readonly topic: string,
    private readonly feed: Feed,
  ) {}

  receive(envelope: Envelope): void {
    if (this.buffer) this.buffer.push(envelope);
    else this.feed.deliverLive(this, envelope);
  }
}

/**
 * A connection's subscriptions, with resume. This is the one place where "no message lost,
 * none twice, in order" is implemented, for every transport and broker:
 *
 * 1. subscribe live first, buffering what arrives;
 * 2. wait until the broker routes the topics here, then read history after the client's id;
 * 3. deliver the replay, then the buffer, then go live.
 *
 * Each topic remembers the newest position it delivered and drops anything at or before it, so
 * a message that is both in history and in the live buffer goes out once.
 */
export class Feed {
  private readonly cursors = new Map<string, TopicCursor>();
  private closed = false;

  constructor(
    private readonly registry: TopicRegistry,
    private readonly broker: PushletBroker,
    private readonly sink: FeedSink,
  ) {}

  get topics(): string[] {
    return [...this.cursors.keys()];
  }

  get size(): number {
    return this.cursors.size;
  }

  has(topic: string): boolean {
    return this.cursors.has(topic);
  }

  /**
   * Subscribes `topics` (those already subscribed are skipped). With `afterId`, first replays
   * every message of those topics published after it, and tells the sink when that cannot be
   * complete (unless `announceReset` is false: a position the server handed out itself).
   * Resolves once the topics are live.
   */
  async add(topics: readonly string[], afterId?: string, announceReset = true): Promise<void> {
    const added: TopicCursor[] = [];
    // One buffer shared by the topics added together, so that their live messages keep their
    // arrival order across topics.
    const buffer: Envelope[] = [];
    for (const topic of topics) {
      if (this.closed || this.cursors.has(topic)) continue;
      const cursor = new TopicCursor(topic, this);
      cursor.buffer = buffer;
      this.cursors.set(topic, cursor);
      added.push(cursor);
      cursor.ready = this.registry.acquire(topic, cursor).ready;
    }
    if (added.length === 0) return;
    try {
      await Promise.all(added.map((cursor) => cursor.ready));
      if (afterId !== undefined && !this.closed) await this.replay(added, afterId, announceReset);
    } finally {
      // Live messages that arrived meanwhile, in arrival order; more may arrive while this waits.
      for (let i = 0; i < buffer.length && !this.closed; i++) {
        const envelope = buffer[i]!;
        const cursor = this.cursors.get(envelope.topic);
        if (cursor) await this.passPaced(cursor, envelope);
      }
      for (const cursor of added) cursor.buffer = undefined;
    }
  }

  /** Unsubscribes `topic`; false if it was not subscribed. */
  remove(topic: string): boolean {
    const cursor = this.cursors.get(topic);
    if (!cursor) return false;
    this.cursors.delete(topic);
    this.detach(cursor);
    return true;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const cursor of this.cursors.values()) this.detach(cursor);
    this.cursors.clear();
  }

  private async replay(added: readonly TopicCursor[], afterId: string, announceReset: boolean): Promise<void> {
    const topics = added.map((cursor) => cursor.topic);
    let result;
    try {
      result = await this.broker.replay(topics, afterId);
    } catch {
      // History unreachable: say so rather than leave a silent gap.
      result = { envelopes: [], reset: true };
    }
    if (this.closed) return;
    if (result.reset && announceReset) this.sink.reset(topics);
    for (const envelope of result.envelopes) {
      if (this.closed) return;
      const cursor = this.cursors.get(envelope.topic);
      if (cursor) await this.passPaced(cursor, envelope);
    }
  }

  /** Delivers, then waits while the sink is full. */
  private async passPaced(cursor: TopicCursor, envelope: Envelope): Promise<void> {
    this.pass(cursor, envelope);
    const writable = this.sink.whenWritable?.();
    if (writable) await writable;
  }

  /** A live message for `cursor` (called by the registry through the cursor). */
  deliverLive(cursor: TopicCursor, envelope: Envelope): void {
    this.pass(cursor, envelope);
  }

  private pass(cursor: TopicCursor, envelope: Envelope): void {
    if (envelope.kind === 'reset') {
      this.sink.reset([cursor.topic]);
      return;
    }
    // A provisional id is local to one instance: deliver, but do not resume from it.
    if (envelope.kind === 'message') {
      if (cursor.last && compareIds(envelope.position, cursor.last) <= 0) return;
      cursor.last = envelope.position;
    }
    this.sink.deliver(envelope);
  }

  private detach(cursor: TopicCursor): void {
    this.registry.release(cursor.topic, cursor);
  }
}
