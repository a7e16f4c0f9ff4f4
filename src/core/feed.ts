import type { DeliveryMeter } from './counters.js';
import { comparePositions, positionBefore, type Position } from '../protocol/ids.js';
import { MESSAGES } from '../pushlet.messages.js';
import { CatchUp, TopicPosition } from './catch-up.js';
import { PushletUnavailableError } from './errors.js';
import type { Envelope } from './envelope.js';
import type { RecoveryCore, ReplayRequest } from './recovery-core.js';
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
  /**
   * Rewind: with neither `after` nor `resetReason`, start just before the topic's newest `rewind`
   * messages still in history (delivered first, then live ones), or from now when it has none.
   */
  readonly rewind?: number;
}

/** Topics a catch-up could not continue exactly, and why (told with `pushlet:reset`). */
export interface FeedReset {
  readonly reason: string;
  readonly topics: readonly string[];
}

/** How {@link Feed.add} caught its topics up. */
export interface CaughtUp {
  /** Topics told `pushlet:reset` (their start could not be continued exactly). */
  readonly resets: number;
  /** Messages replayed from history. */
  readonly replayed: number;
}

/** One topic of a feed: its live subscription and the newest position delivered from it. */
class FeedTopic implements ChannelListener {
  readonly position = new TopicPosition();
  ready: Promise<void> = Promise.resolve();
  catchUp: CatchUp<Envelope> | undefined;

  constructor(
    readonly topic: string,
    private readonly feed: Feed,
    readonly meter: DeliveryMeter | undefined,
  ) {}

  receive(envelope: Envelope): void {
    if (this.catchUp?.hold(envelope)) return;
    this.feed.pass(this, envelope);
  }

  gap(until?: Position): void {
    this.feed.lost(this, until);
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
    private readonly broker: RecoveryCore,
    private readonly sink: FeedSink,
    /** How this feed's deliveries are counted (none: not a connection). */
    private readonly meter?: DeliveryMeter,
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
  get topicPositions(): ReadonlyMap<string, { readonly position: TopicPosition }> {
    return this.entries;
  }

  /**
   * Subscribes `starts` (topics already subscribed are skipped) and catches them up. `announce`
   * runs once every start position is known and before any message of these topics, with the
   * resets to come (the session sends `pushlet:connected` there, naming them); then come the
   * resets, the replay and the held live messages. Resolves once the topics are live, with what
   * the catch-up did (`undefined` when nothing was added).
   */
  async add(starts: readonly TopicStart[], announce?: (resets: readonly FeedReset[]) => void): Promise<CaughtUp | undefined> {
    const wanted = starts.filter((start) => !this.entries.has(start.topic));
    if (this.closed || wanted.length === 0) {
      announce?.([]);
      return undefined;
    }
    // A topic that starts from now starts from the broker's position read before subscribing:
    // everything published after the subscription was asked for is delivered.
    const freshTopics = wanted.filter((start) => !start.after || start.resetReason).map((start) => start.topic);
    // A client with no id at all may start from an estimate (older messages are no harm to it);
    // one whose id was refused has seen messages and must start exactly.
    const estimate = wanted.every((start) => !start.after && !start.resetReason);
    const freshPositions = freshTopics.length > 0 ? await unavailableUnless(this.broker.positions(freshTopics, estimate)) : [];
    const from = new Map(freshTopics.map((topic, i) => [topic, freshPositions[i]!]));
    const rewound = await this.rewindStarts(wanted, from);
    const added: Array<{ entry: FeedTopic; start: TopicStart; after: Position }> = [];
    // One catch-up for the topics added together: their held messages keep their arrival order.
    const catchUp = new CatchUp<Envelope>();
    for (const start of wanted) {
      if (this.closed || this.entries.has(start.topic)) continue;
      const entry = new FeedTopic(start.topic, this, this.meter);
      entry.catchUp = catchUp;
      this.entries.set(start.topic, entry);
      entry.ready = this.registry.acquire(start.topic, entry).ready;
      added.push({ entry, start, after: rewound.get(start.topic) ?? from.get(start.topic) ?? start.after! });
    }
    let caughtUp;
    try {
      await Promise.all(added.map(({ entry }) => entry.ready));
      caughtUp = await this.catchUpFrom(added);
    } catch (error) {
      for (const { entry } of added) this.remove(entry.topic);
      throw error;
    }
    const { replayed, resets } = caughtUp;
    if (this.closed) return undefined;
    const told = [...resets].map(([reason, topics]) => ({ reason, topics }));
    announce?.(told);
    let reset = 0;
    for (const { reason, topics } of told) {
      this.sink.gap(topics, reason);
      reset += topics.length;
    }
    await catchUp.finish(
      replayed,
      (envelope) => this.passPaced(envelope),
      () => this.closed,
    );
    for (const { entry } of added) if (entry.catchUp === catchUp) entry.catchUp = undefined;
    return { resets: reset, replayed: replayed.length };
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

  /** The broker may have lost messages of `entry`'s topic (before `until`: a topic already past it lost nothing). */
  lost(entry: FeedTopic, until?: Position): void {
    if (this.closed || this.entries.get(entry.topic) !== entry) return;
    const last = entry.position.last;
    if (until && last && comparePositions(last, until) >= 0) return;
    this.sink.gap([entry.topic], MESSAGES.resetHistoryLost);
    // Announced: from here the topic is exact again, and the client's next id says so.
    if (until) entry.position.last = until;
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
    // History that cannot be read now is not a gap: the connection fails and comes back later.
    const result = await unavailableUnless(this.broker.replay(requests));
    // A position the history cannot continue from exactly (too old, lost, unknown) restarts the
    // topic from now, after a reset: what is left of its history is not replayed, so that the
    // client's next id is a good one (one behaviour for every kind of bad id).
    const restart = new Set<string>();
    for (const topic of result.incomplete) {
      if (!resumed.has(topic)) continue;
      say(MESSAGES.resetTooOld, topic);
      restart.add(topic);
    }
    for (const topic of result.unknown) {
      say(MESSAGES.resetUnknownId, topic);
      restart.add(topic);
    }
    // Where one id places every topic, a topic restarted from now would carry the id past what
    // the others have yet to replay (or hold it back for good): they all restart, and say so.
    if (restart.size > 0 && this.broker.ordering === 'total') {
      for (const topic of resumed) {
        if (restart.has(topic)) continue;
        say(MESSAGES.resetTooOld, topic);
        restart.add(topic);
      }
    }
    const again = [...restart];
    const positions = again.length > 0 ? await unavailableUnless(this.broker.positions(again)) : [];
    const restartAt = new Map(again.map((topic, i) => [topic, positions[i]!]));
    for (const { entry, after } of added) entry.position.last = restartAt.get(entry.topic) ?? after;
    const replayed = result.envelopes;
    return { replayed: replayed.filter((envelope) => !restart.has(envelope.topic)), resets };
  }

  /**
   * Where rewound topics start: just before the oldest of their newest `rewind` messages still in
   * history (never after the position read before subscribing), so that the ordinary catch-up
   * delivers those messages, then anything newer, each once. Such a topic is not a resume: an
   * incomplete history does not reset it (rewind gives what history still holds). A topic with no
   * history, or a broker that cannot read its newest history, starts from now.
   */
  private async rewindStarts(starts: readonly TopicStart[], from: ReadonlyMap<string, Position>): Promise<Map<string, Position>> {
    const rewinding = starts.filter((start) => (start.rewind ?? 0) > 0 && !start.after && !start.resetReason && from.has(start.topic));
    const out = new Map<string, Position>();
    if (rewinding.length === 0 || !this.broker.canTail) return out;
    const tails = await unavailableUnless(this.broker.tail(rewinding.map(({ topic, rewind }) => ({ topic, limit: rewind! }))));
    rewinding.forEach(({ topic }, i) => {
      const oldest = tails[i]?.[0];
      if (!oldest) return;
      const before = positionBefore(oldest.position);
      const now = from.get(topic)!;
      out.set(topic, comparePositions(before, now) < 0 ? before : now);
    });
    return out;
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

/** A broker failure as a {@link PushletUnavailableError}. */
async function unavailableUnless<T>(operation: Promise<T>): Promise<T> {
  try {
    return await operation;
  } catch (error) {
    throw new PushletUnavailableError(MESSAGES.historyUnavailable, error);
  }
}
