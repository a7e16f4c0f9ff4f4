import type { DeliveryMeter } from './counters.js';
import { comparePositions, positionBefore, type Position } from '../protocol/ids.js';
import { MESSAGES } from '../pushlet.messages.js';
import { CatchUp, TopicPosition } from './catch-up.js';
import { PushletUnavailableError } from './errors.js';
import type { Envelope } from './envelope.js';
import { withoutCopies, type RecoveryCore } from './recovery-core.js';
import type { ChannelListener, TopicRegistry } from './topic-registry.js';
import { matchesPattern } from '../protocol/topics.js';

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
  /** The topic, or the pattern with {@link pattern}. */
  readonly topic: string;
  /** `topic` is a pattern (`orders/*`): its topics' messages, each once. */
  readonly pattern?: boolean;
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
  /** Where it started (after a reset: where it started again): it has delivered what lies between this and `position`. */
  start: Position | undefined;
  ready: Promise<void> = Promise.resolve();
  catchUp: CatchUp<Envelope> | undefined;

  constructor(
    readonly topic: string,
    readonly pattern: boolean,
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

/** Every feed's pattern subscriptions until it has one: never written (most connections hold no pattern). */
const NO_PATTERNS: Map<string, FeedTopic> = new Map();

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
  /** Pattern subscriptions, apart from topics: the pattern `*` is not the broadcast topic `*`. */
  private patternEntries: Map<string, FeedTopic> = NO_PATTERNS;
  private closed = false;

  constructor(
    private readonly registry: TopicRegistry,
    private readonly broker: RecoveryCore,
    private readonly sink: FeedSink,
    /** How this feed's deliveries are counted (none: not a connection). */
    private readonly meter?: DeliveryMeter,
  ) {}

  /** The topics subscribed (broadcasts included), not the patterns. */
  get topics(): string[] {
    return [...this.entries.keys()];
  }

  get patterns(): string[] {
    return [...this.patternEntries.keys()];
  }

  get size(): number {
    return this.entries.size + this.patternEntries.size;
  }

  /** Whether the topic (or with `pattern`, the pattern) is subscribed. */
  has(topic: string, pattern = false): boolean {
    return (pattern ? this.patternEntries : this.entries).has(topic);
  }

  /** Each topic with the newest position delivered from it (its start position before that); patterns not included. */
  get topicPositions(): ReadonlyMap<string, { readonly position: TopicPosition }> {
    return this.entries;
  }

  /** The newest position delivered by every subscription, patterns included. */
  positions(): Array<Position | undefined> {
    return [...this.entries.values(), ...this.patternEntries.values()].map((entry) => entry.position.last);
  }

  /**
   * Subscribes `starts` (topics already subscribed are skipped) and catches them up. `announce`
   * runs once every start position is known and before any message of these topics, with the
   * resets to come (the session sends `pushlet:connected` there, naming them); then come the
   * resets, the replay and the held live messages. Resolves once the topics are live, with what
   * the catch-up did (`undefined` when nothing was added).
   */
  async add(starts: readonly TopicStart[], announce?: (resets: readonly FeedReset[]) => void): Promise<CaughtUp | undefined> {
    const wanted = starts.filter((start) => !this.has(start.topic, start.pattern));
    if (this.closed || wanted.length === 0) {
      announce?.([]);
      return undefined;
    }
    // A topic that starts from now starts from the broker's position read before subscribing:
    // everything published after the subscription was asked for is delivered.
    const fresh = wanted.filter((start) => !start.after || start.resetReason);
    // A client with no id at all may start from an estimate (older messages are no harm to it);
    // one whose id was refused has seen messages and must start exactly.
    const estimate = wanted.every((start) => !start.after && !start.resetReason);
    const from = new Map<TopicStart, Position>();
    for (const kind of ['topic', 'pattern'] as const) {
      const starts = fresh.filter((start) => (start.pattern ? 'pattern' : 'topic') === kind);
      if (starts.length === 0) continue;
      const positions = await unavailableUnless(
        this.broker.positions(
          starts.map((start) => start.topic),
          estimate,
          kind,
        ),
      );
      starts.forEach((start, i) => from.set(start, positions[i]!));
    }
    const rewound = await this.rewindStarts(wanted, from);
    const added: Array<{ entry: FeedTopic; start: TopicStart; after: Position }> = [];
    // One catch-up for the topics added together: their held messages keep their arrival order.
    const catchUp = new CatchUp<Envelope>();
    for (const start of wanted) {
      const pattern = start.pattern ?? false;
      if (this.closed || this.has(start.topic, pattern)) continue;
      const entry = new FeedTopic(start.topic, pattern, this, this.meter);
      entry.catchUp = catchUp;
      if (pattern && this.patternEntries === NO_PATTERNS) this.patternEntries = new Map();
      (pattern ? this.patternEntries : this.entries).set(start.topic, entry);
      entry.ready = (pattern ? this.registry.acquirePattern(start.topic, entry) : this.registry.acquire(start.topic, entry)).ready;
      added.push({ entry, start, after: rewound.get(start) ?? from.get(start) ?? start.after! });
    }
    let caughtUp;
    try {
      await Promise.all(added.map(({ entry }) => entry.ready));
      caughtUp = await this.catchUpFrom(added);
    } catch (error) {
      for (const { entry } of added) this.remove(entry.topic, entry.pattern);
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

  /** Unsubscribes `topic` (with `pattern`: the pattern); false if it was not subscribed. */
  remove(topic: string, pattern = false): boolean {
    const entries = pattern ? this.patternEntries : this.entries;
    const entry = entries.get(topic);
    if (!entry) return false;
    entries.delete(topic);
    if (pattern) this.registry.releasePattern(topic, entry);
    else this.registry.release(topic, entry);
    return true;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [topic, entry] of this.entries) this.registry.release(topic, entry);
    for (const [pattern, entry] of this.patternEntries) this.registry.releasePattern(pattern, entry);
    this.entries.clear();
    this.patternEntries.clear();
  }

  /**
   * A message of `entry`'s topic (or of a topic of its pattern). Delivered once per connection:
   * not when another subscription of this feed that matches it has delivered it already (it has
   * passed the message's position since it started; positions are ordered across topics wherever
   * patterns are allowed).
   */
  pass(entry: FeedTopic, envelope: Envelope): boolean {
    if (this.closed || !entry.position.advance(envelope.position)) return false;
    if (this.patternEntries.size > 0 && this.deliveredElsewhere(entry, envelope)) return false;
    this.sink.deliver(envelope);
    return true;
  }

  /** The subscriptions a message reaches: its topic's, then each matching pattern's. */
  private receiversOf(envelope: Envelope): FeedTopic[] {
    const found: FeedTopic[] = [];
    const exact = this.entries.get(envelope.topic);
    if (exact) found.push(exact);
    for (const entry of this.patternEntries.values()) if (matchesPattern(entry.topic, envelope.topic)) found.push(entry);
    return found;
  }

  private deliveredElsewhere(entry: FeedTopic, envelope: Envelope): boolean {
    const position = envelope.position;
    const covered = (other: FeedTopic | undefined) =>
      other !== undefined &&
      other !== entry &&
      other.start !== undefined &&
      comparePositions(other.start, position) < 0 &&
      other.position.last !== undefined &&
      comparePositions(position, other.position.last) <= 0;
    if (covered(this.entries.get(envelope.topic))) return true;
    for (const other of this.patternEntries.values()) if (covered(other) && matchesPattern(other.topic, envelope.topic)) return true;
    return false;
  }

  /** The broker may have lost messages of `entry`'s topic or pattern (before `until`: one already past it lost nothing). */
  lost(entry: FeedTopic, until?: Position): void {
    if (this.closed || (entry.pattern ? this.patternEntries : this.entries).get(entry.topic) !== entry) return;
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
    const resumed = new Set(added.filter(({ start }) => start.after && !start.resetReason).map(({ entry }) => entry));
    const topics = added.filter(({ entry }) => !entry.pattern);
    const patterns = added.filter(({ entry }) => entry.pattern);
    // History that cannot be read now is not a gap: the connection fails and comes back later.
    const { topics: result, patterns: patternResult } = await unavailableUnless(
      this.broker.catchUp(
        topics.map(({ entry, after }) => ({ topic: entry.topic, after })),
        patterns.map(({ entry, after }) => ({ pattern: entry.topic, after })),
      ),
    );
    // A position the history cannot continue from exactly (too old, lost, unknown) restarts the
    // topic from now, after a reset: what is left of its history is not replayed, so that the
    // client's next id is a good one (one behaviour for every kind of bad id).
    const restart = new Set<FeedTopic>();
    const judge = (list: typeof added, verdicts: { incomplete: readonly string[]; unknown: readonly string[] }) => {
      for (const { entry } of list) {
        if (verdicts.unknown.includes(entry.topic)) say(MESSAGES.resetUnknownId, entry.topic);
        else if (verdicts.incomplete.includes(entry.topic) && resumed.has(entry)) say(MESSAGES.resetTooOld, entry.topic);
        else continue;
        restart.add(entry);
      }
    };
    judge(topics, result);
    judge(patterns, patternResult);
    // Where one id places every topic, a topic restarted from now would carry the id past what
    // the others have yet to replay (or hold it back for good): they all restart, and say so.
    if (restart.size > 0 && this.broker.ordering === 'total') {
      for (const entry of resumed) {
        if (restart.has(entry)) continue;
        say(MESSAGES.resetTooOld, entry.topic);
        restart.add(entry);
      }
    }
    const restartAt = new Map<FeedTopic, Position>();
    for (const pattern of [false, true]) {
      const again = [...restart].filter((entry) => entry.pattern === pattern);
      if (again.length === 0) continue;
      const positions = await unavailableUnless(
        this.broker.positions(
          again.map((entry) => entry.topic),
          false,
          pattern ? 'pattern' : 'topic',
        ),
      );
      again.forEach((entry, i) => restartAt.set(entry, positions[i]!));
    }
    for (const { entry, after } of added) entry.start = entry.position.last = restartAt.get(entry) ?? after;
    // A restarted subscription drops what it would have replayed (what is left of its history).
    const topicReplay = restart.size === 0 ? result.envelopes : result.envelopes.filter((envelope) => !restart.has(this.entries.get(envelope.topic)!));
    if (patterns.length === 0) return { replayed: topicReplay, resets };
    const patternReplay = patternResult.envelopes.filter((envelope) =>
      patterns.some(({ entry }) => !restart.has(entry) && matchesPattern(entry.topic, envelope.topic)),
    );
    return { replayed: withoutCopies([...topicReplay, ...patternReplay].sort((x, y) => comparePositions(x.position, y.position))), resets };
  }

  /**
   * Where rewound topics start: just before the oldest of their newest `rewind` messages still in
   * history (never after the position read before subscribing), so that the ordinary catch-up
   * delivers those messages, then anything newer, each once. Such a topic is not a resume: an
   * incomplete history does not reset it (rewind gives what history still holds). A topic with no
   * history, or a broker that cannot read its newest history, starts from now.
   */
  private async rewindStarts(starts: readonly TopicStart[], from: ReadonlyMap<TopicStart, Position>): Promise<Map<TopicStart, Position>> {
    const rewinding = starts.filter((start) => (start.rewind ?? 0) > 0 && !start.after && !start.resetReason && from.has(start));
    const out = new Map<TopicStart, Position>();
    if (rewinding.length === 0 || !this.broker.canTail) return out;
    const topics = rewinding.filter((start) => !start.pattern);
    const pages = topics.length > 0 ? await unavailableUnless(this.broker.tail(topics.map(({ topic, rewind }) => ({ topic, limit: rewind! })))) : [];
    const tails = new Map(topics.map((start, i) => [start, pages[i]]));
    // A pattern's rewind: the newest messages of all its topics together.
    for (const start of rewinding) if (start.pattern) tails.set(start, await unavailableUnless(this.broker.tailPattern(start.topic, start.rewind!)));
    rewinding.forEach((start) => {
      const oldest = tails.get(start)?.[0];
      if (!oldest) return;
      const before = positionBefore(oldest.position);
      const now = from.get(start)!;
      out.set(start, comparePositions(before, now) < 0 ? before : now);
    });
    return out;
  }

  /**
   * Delivers a replayed or held message through the first of its subscriptions that has not had
   * it yet, then waits while the sink is full.
   */
  private async passPaced(envelope: Envelope): Promise<void> {
    const exact = this.entries.get(envelope.topic);
    if (this.patternEntries.size === 0) {
      if (exact) this.pass(exact, envelope);
    } else {
      for (const entry of this.receiversOf(envelope)) if (this.pass(entry, envelope)) break;
    }
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
