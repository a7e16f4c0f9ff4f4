import type { PushletBroker, ReplayRequest } from '../interfaces/broker.interface.js';
import type { Position } from '../protocol/ids.js';
import { MESSAGES } from '../pushlet.messages.js';
import { CatchUp, TopicPosition } from './catch-up.js';
import type { Envelope } from './envelope.js';
import type { ChannelListener, TopicRegistry } from './topic-registry.js';

/** Where a feed hands its messages: a session. */
export interface FeedSink {
  deliver(envelope: Envelope): void;
  /** Messages of `topics` may be missing, for `reason`: sent before anything later of those topics. */
  gap(topics: readonly string[], reason: string): void;
  /** Backpressure for replays: resolves once the sink can take more, `undefined` when it can now. */
  whenWritable(): Promise<void> | undefined;
}

/** How one topic starts: after `after` (a resume), or from the broker's current position. */
export interface TopicStart {
  readonly topic: string;
  readonly after?: Position;
  /** The client's position for this topic could not be used: say so with a reset, then start from now. */
  readonly resetReason?: string;
}

/** One topic of a feed: its live subscription and the newest position delivered from it. */
class FeedTopic implements ChannelListener {
  readonly position = new TopicPosition();
  ready: Promise<void> = Promise.resolve();
  catchUp: CatchUp<Envelope> | undefined;

  constructor(
    readonly topic: string,
    private readonly feed: Feed,
  ) {}

  receive(envelope: Envelope): void {
    if (this.catchUp?.hold(envelope)) return;
    this.feed.pass(this, envelope);
  }

  gap(): void {
    this.feed.lost(this);
  }
}

/**
 * A session's subscriptions, with resume: the one place where "no message lost, none twice, in
 * order" is implemented for every transport and broker. Each topic subscribes live first and
 * holds what arrives; once the broker routes the topic here, history is read after the client's
 * position (or the broker's current position is taken), then the history is delivered, then
 * what was held ({@link CatchUp}). Each topic drops anything at or before the newest position it
 * delivered ({@link TopicPosition}), so a message both in history and live goes out once.
 */
export class Feed {
  private readonly entries = new Map<string, FeedTopic>();
  private closed = false;

  constructor(
    private readonly registry: TopicRegistry,
    private readonly broker: PushletBroker,
    private readonly sink: FeedSink,
  ) {}

  get topics(): string[] {
    return [...this.entries.keys()];
  }

  get size(): number {
    return this.entries.size;
  }

  has(topic: string): boolean {
    return this.entries.has(topic);
  }

  /** Each topic with the newest position delivered from it (its start position before that). */
  *positions(): Iterable<[string, Position | undefined]> {
    for (const [topic, entry] of this.entries) yield [topic, entry.position.last];
  }

  /**
   * Subscribes `starts` (topics already subscribed are skipped) and catches them up. `announce`
   * runs once every start position is known and before any message of these topics (the
   * session sends `pushlet:connected` there); then come the resets, the replay and the held
   * live messages. Resolves once the topics are live.
   */
  async add(starts: readonly TopicStart[], announce?: () => void): Promise<void> {
    const wanted = starts.filter((start) => !this.entries.has(start.topic));
    if (this.closed || wanted.length === 0) {
      announce?.();
      return;
    }
    // A topic that starts from now starts from the broker's position read before subscribing:
    // everything published after the subscription was asked for is delivered.
    const freshTopics = wanted.filter((start) => !start.after || start.resetReason).map((start) => start.topic);
    const freshPositions = freshTopics.length > 0 ? await this.broker.positions(freshTopics) : [];
    const from = new Map(freshTopics.map((topic, i) => [topic, freshPositions[i]!]));
    const added: Array<{ entry: FeedTopic; start: TopicStart; after: Position }> = [];
    // One catch-up for the topics added together: their held messages keep their arrival order.
    const catchUp = new CatchUp<Envelope>();
    for (const start of wanted) {
      if (this.closed || this.entries.has(start.topic)) continue;
      const entry = new FeedTopic(start.topic, this);
      entry.catchUp = catchUp;
      this.entries.set(start.topic, entry);
      entry.ready = this.registry.acquire(start.topic, entry).ready;
      added.push({ entry, start, after: from.get(start.topic) ?? start.after! });
    }
    try {
      await Promise.all(added.map(({ entry }) => entry.ready));
    } catch (error) {
      for (const { entry } of added) this.remove(entry.topic);
      throw error;
    }
    const { replayed, resets } = await this.catchUpFrom(added);
    if (this.closed) return;
    announce?.();
    for (const [reason, topics] of resets) this.sink.gap(topics, reason);
    await catchUp.finish(replayed, (envelope) => this.passPaced(envelope), () => this.closed);
    for (const { entry } of added) if (entry.catchUp === catchUp) entry.catchUp = undefined;
  }

  /** Unsubscribes `topic`; false if it was not subscribed. */
  remove(topic: string): boolean {
    const entry = this.entries.get(topic);
    if (!entry) return false;
    this.entries.delete(topic);
    this.registry.release(topic, entry);
    return true;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [topic, entry] of this.entries) this.registry.release(topic, entry);
    this.entries.clear();
  }

  /** A live message of `entry`'s topic. */
  pass(entry: FeedTopic, envelope: Envelope): void {
    if (this.closed || !entry.position.advance(envelope.position)) return;
    this.sink.deliver(envelope);
  }

  /** The broker may have lost messages of `entry`'s topic. */
  lost(entry: FeedTopic): void {
    if (!this.closed && this.entries.get(entry.topic) === entry) this.sink.gap([entry.topic], MESSAGES.resetHistoryLost);
  }

  /**
   * Reads every added topic's history after its start (the client's position, or the broker's
   * position read before subscribing) and sets the topic's position there. Returns the history
   * to deliver and the resets to announce, grouped by reason.
   */
  private async catchUpFrom(added: ReadonlyArray<{ entry: FeedTopic; start: TopicStart; after: Position }>) {
    const resets = new Map<string, string[]>();
    const say = (reason: string, topic: string) => {
      const list = resets.get(reason) ?? [];
      list.push(topic);
      resets.set(reason, list);
    };
    for (const { start } of added) if (start.resetReason) say(start.resetReason, start.topic);
    const resumed = new Set(added.filter(({ start }) => start.after && !start.resetReason).map(({ start }) => start.topic));
    const requests: ReplayRequest[] = added.map(({ entry, after }) => ({ topic: entry.topic, after }));
    let replayed: readonly Envelope[] = [];
    let unknown = new Set<string>();
    try {
      const result = await this.broker.replay(requests);
      replayed = result.envelopes;
      unknown = new Set(result.unknown);
      for (const topic of result.incomplete) if (resumed.has(topic)) say(MESSAGES.resetTooOld, topic);
      for (const topic of unknown) say(MESSAGES.resetUnknownId, topic);
    } catch {
      // History unreachable: say so rather than leave a silent gap, and start from now.
      unknown = new Set(requests.map((request) => request.topic));
      for (const topic of unknown) say(MESSAGES.resetHistoryUnavailable, topic);
    }
    const again = [...unknown];
    const positions = again.length > 0 ? await this.broker.positions(again) : [];
    const restart = new Map(again.map((topic, i) => [topic, positions[i]!]));
    for (const { entry, after } of added) entry.position.last = restart.get(entry.topic) ?? after;
    return { replayed: replayed.filter((envelope) => !restart.has(envelope.topic)), resets };
  }

  /** Delivers a replayed or held message, then waits while the sink is full. */
  private async passPaced(envelope: Envelope): Promise<void> {
    const entry = this.entries.get(envelope.topic);
    if (!entry) return;
    this.pass(entry, envelope);
    const writable = this.sink.whenWritable();
    if (writable) await writable;
  }
}
