import { randomBytes } from 'node:crypto';
import type { LoggerService } from '@nestjs/common';
import type {
  BrokerEvents,
  BrokerPatterns,
  BrokerRecord,
  PushletBroker,
  PushletBrokerStatus,
  PushletControlCommand,
  TopicRead,
} from '../interfaces/broker.interface.js';
import { matchesPattern } from '../protocol/topics.js';
import type { PushletMessage } from '../interfaces/message.interface.js';
import { comparePositions, formatPosition, type Position } from '../protocol/ids.js';
import { MESSAGES } from '../pushlet.messages.js';
import { BrokerLink, type BrokerLinkState } from './broker-link.js';
import { CatchUp, TopicPosition } from './catch-up.js';
import { Envelope } from './envelope.js';
import { PushletBrokerError, PushletValidationError } from './errors.js';
import { Outbox } from './outbox.js';
import { PatternIndex } from './pattern-index.js';
import { PerTurn } from './per-turn.js';
import type { PresenceStore } from './presence.js';
import { RecentPublications } from './recent-publications.js';
import { RecentWindow, type RecentWindowLimits } from './recent-window.js';

/** Rounds of recovery (subscribe and read the topics watched meanwhile) before giving up and trying again later. */
const MAX_RECOVERY_ROUNDS = 20;
/** How often a core whose link is down checks whether it can recover. */
const HEAL_INTERVAL_MS = 250;
/**
 * Where a topic first watched while the broker is unreachable starts when ids are ordered per
 * topic (the backend's clocks, not ours): this far back, so that clock skew can only add older
 * messages, never skip one.
 */
const CLOCK_SKEW_MARGIN_MS = 10_000;
/** Default of {@link PushletBroker.maxQueued}. */
export const DEFAULT_MAX_QUEUED = 10_000;

/** What the core reports to the instance it serves (the topic registry and the session registry). */
export interface CoreEventHandler {
  /** A message for this instance's subscribers of its topic, in the topic's order, once. */
  message(envelope: Envelope): void;
  /**
   * Messages of `topic` may have been lost on this instance: its subscribers are told with
   * `pushlet:reset`. With `until`, only messages before that position are concerned: a
   * subscriber already past it lost nothing.
   */
  gap(topic: string, until?: Position): void;
  /** The same for the subscribers of a pattern. */
  gapPattern?(pattern: string, until?: Position): void;
  /** An instance-wide command from some instance. */
  control(command: PushletControlCommand): void;
}

/** Where one topic's replay starts: every message of `topic` after `after`. */
export interface ReplayRequest {
  readonly topic: string;
  readonly after: Position;
}

/** Where one pattern's replay starts: every message of its topics after `after` (positions ordered across topics). */
export interface PatternReplayRequest {
  readonly pattern: string;
  readonly after: Position;
}

/** What a replay found. */
export interface ReplayResult {
  /** Messages after each request's position, each topic's in its order; merged in position order with `ordering: 'total'`. */
  readonly envelopes: readonly Envelope[];
  /** Topics whose history after the position may be incomplete (trimmed, expired, lost): a reset, never a silent gap. */
  readonly incomplete: readonly string[];
  /** Topics whose position the broker never handed out: nothing to replay, delivery starts from now. */
  readonly unknown: readonly string[];
}

/** What this instance knows about one topic it has subscribers of (or the broadcast topic). */
interface TopicState {
  /** Newest position delivered here (or known to be current); recovery reads history after it. */
  readonly position: TopicPosition;
  /**
   * The position came from the broker (a message, a position read, a recovery), not from an
   * estimate: only then may a connection start from it while the broker cannot be asked.
   */
  confirmed: boolean;
}

/** A snapshot of the core's link and counters (for tests, benchmarks and health checks). */
export interface RecoveryCoreStats {
  /** The link's state (see `broker-link.ts`). */
  readonly state: BrokerLinkState;
  /** Random id of this instance, carried by its publications. */
  readonly instanceId: string;
  /** Live records received from the broker. */
  readonly received: number;
  /** Of those, records of topics without subscribers here (in flight while unsubscribing). */
  readonly receivedUnwatched: number;
  /** Messages handed to local subscribers (live or recovered). */
  readonly delivered: number;
  /** Records that reached this instance twice (live and from history, or recorded twice) and were dropped. */
  readonly duplicatesDropped: number;
  /** Publications waiting for the broker now. */
  readonly queued: number;
  /** Messages recovered from history after a lost link. */
  readonly recovered: number;
  /** Topics whose local subscribers were told `pushlet:reset` after a lost link. */
  readonly resets: number;
  /** Topic resumes ({@link RecoveryCore.replay} requests) answered from the recent window, without the broker. */
  readonly resumesFromWindow: number;
  /** Topic resumes read from the broker's history. */
  readonly resumesFromBroker: number;
  /** Messages the recent window holds now, and their estimated bytes. */
  readonly windowMessages: number;
  readonly windowBytes: number;
}

/**
 * The one place where an instance keeps its promise through broker faults, for every broker: the
 * broker ({@link PushletBroker}) only appends, reads, routes and reports its link; this decides.
 *
 * - **Link**: an explicit machine ({@link BrokerLink}); any loss sends it `down`, and it recovers
 *   as soon as the broker is connected (checked on every `up` and every {@link HEAL_INTERVAL_MS}).
 * - **Publications** wait in the {@link Outbox} until the broker has recorded them, in order,
 *   sent again after a loss with the same origin and counter; nothing is delivered that the
 *   broker has not ordered, so nothing arrives twice or out of order.
 * - **Live records** are delivered once per topic in order ({@link TopicPosition}, and
 *   {@link RecentPublications} for a publication the broker recorded twice); while the link is
 *   down or recovering they are held ({@link CatchUp}); past `maxQueued` held, every topic gets a
 *   reset instead.
 * - **Recovery** runs in rounds: subscribe the watched topics, read each one's history after the
 *   newest position delivered here, deliver it, then what was held; topics watched meanwhile make
 *   another round. A topic whose history no longer reaches back (the broker lost it, or trimmed
 *   it) gets a gap with the floor, so that only subscribers behind it are reset.
 * - **Positions and replays** for connections: read from the broker when it is live; while it is
 *   not, a topic watched here is exact from the newest position delivered here (recovery will
 *   bring everything after it), and anything older must wait.
 * - **The recent window** ({@link RecentWindow}, remote brokers only): the messages of each watched
 *   topic delivered here lately, complete after the position from which the topic has been
 *   followed without a break (watched and confirmed, or recovered exactly). A resume from inside
 *   it is answered from it, without a broker read; a break (the link down, held messages
 *   overflowing, an unwatch) clears it, and it opens again once the topic is followed again.
 *
 * Connections' own catch-up (a client resuming) is the feed's (`feed.ts`), on top of this.
 */
export class RecoveryCore {
  readonly instanceId = randomBytes(8).toString('hex');
  readonly ordering: 'total' | 'per-topic';
  private readonly link: BrokerLink;
  private readonly outbox: Outbox;
  private readonly maxQueued: number;
  private handler: CoreEventHandler | undefined;
  private readonly topics = new Map<string, TopicState>();
  /** The patterns this instance has subscribers of, with the newest position delivered under each. */
  private readonly patterns = new PatternIndex<TopicState>();
  /**
   * Publications delivered here lately, by origin and counter. A broker records a publication
   * once even when it is sent again; this catches the one case it cannot: a copy sent again to a
   * broker that lost the first one's record with its data.
   */
  private readonly recent: RecentPublications;
  /** Live records held while the link is down or recovering. */
  private held: CatchUp<BrokerRecord> | undefined;
  private recovering: Promise<void> | undefined;
  private flushScheduled = false;
  /** Resume reads and start positions of one event-loop turn, served together (reconnect storms). */
  private readonly reads: Pick<PerTurn<readonly ReplayRequest[], TopicRead[]>, 'call'>;
  private readonly positionReads: Pick<PerTurn<readonly string[], Position[]>, 'call'>;
  /** Rewind and history reads of one event-loop turn, served together (page loads rewinding the same topics). */
  private readonly tailReads: Pick<PerTurn<readonly TailAsk[], BrokerRecord[][]>, 'call'> | undefined;
  private healer: NodeJS.Timeout | undefined;
  /** With `ordering: 'total'`: the newest position seen from the broker (positions are global there). */
  private lastSeen: Position = { ms: 0, seq: 0 };
  /** The newest position of any topic this instance has had from the broker (a record or a position read), whatever the ordering. */
  private newestKnown: Position = { ms: 0, seq: 0 };
  /** The last envelope delivered here (see {@link publish}). */
  private lastDelivered: Envelope | undefined;
  private everReady = false;
  private reportedStart = false;
  private lastRecoveryError: unknown;
  private outage: { recovered: number; resets: number } | undefined;
  /** Told each time the link becomes `ready` after an outage (presence adds its members again). */
  private readonly readyListeners = new Set<() => void>();
  private readonly counts = {
    received: 0,
    receivedUnwatched: 0,
    delivered: 0,
    duplicatesDropped: 0,
    recovered: 0,
    resets: 0,
    resumesFromWindow: 0,
    resumesFromBroker: 0,
  };
  /** Recent messages of the watched topics, to answer resumes without the broker (absent for a broker in the process, or when off). */
  private readonly window: RecentWindow | undefined;

  private readonly events: BrokerEvents = {
    up: () => this.heal(),
    down: () => this.lost(),
    records: (records) => this.onRecords(records),
    control: (command) => this.handler?.control(command),
  };

  /**
   * `window`: the recent window's bounds (see {@link RecentWindow}); used with a remote broker
   * (`batching`) only, whose reads it saves; none (or `maxBytes` 0) turns it off.
   */
  constructor(
    readonly broker: PushletBroker,
    private readonly logger: LoggerService,
    window?: RecentWindowLimits,
  ) {
    this.ordering = broker.ordering;
    this.window = window && window.maxBytes > 0 && broker.batching ? new RecentWindow(window, broker.clock !== 'sequence') : undefined;
    this.maxQueued = broker.maxQueued ?? DEFAULT_MAX_QUEUED;
    this.recent = new RecentPublications(Math.max(20_000, 2 * this.maxQueued));
    this.link = new BrokerLink((state, previous) => this.entered(state, previous));
    this.outbox = new Outbox(this.instanceId, this.maxQueued, {
      send: (publications) => broker.append(publications),
      isUnreachable: (error) => broker.unreachable?.(error) ?? true,
      unreachable: () => this.lost(),
    });
    // A remote broker answers a turn's questions together; one in the process answers at once.
    this.reads = broker.batching ? new PerTurn((readers) => readMany(broker, readers)) : { call: (requests) => broker.read(requests) };
    this.positionReads = broker.batching ? new PerTurn((lists) => positionsMany(broker, lists)) : { call: (topics) => broker.positions(topics) };
    const tail = broker.tail?.bind(broker);
    this.tailReads = tail && (broker.batching ? new PerTurn((lists) => tailMany(tail, lists)) : { call: (requests) => tail(requests) });
  }

  /** Connects the broker and catches up; rejects if it cannot (unless the broker may start without its backend). */
  async start(handler: CoreEventHandler): Promise<void> {
    this.handler = handler;
    try {
      await this.broker.start(this.events);
      if (this.broker.isConnected()) this.link.to('recovering');
      await this.recovering;
      if (this.link.state !== 'ready')
        throw new PushletBrokerError(`could not catch up with ${this.broker.description}: ${reason(this.lastRecoveryError ?? 'not connected')}`);
    } catch (error) {
      if (!this.broker.startWithoutBackend) {
        this.link.to('stopped');
        await this.broker.stop().catch(() => undefined);
        throw error;
      }
      this.logger.warn(
        `${this.broker.description} is unreachable (${reason(error)}): starting without it; publications wait for it and are delivered once it has recorded them`,
      );
      if (this.link.state !== 'down') this.link.to('down');
    }
    this.healer = setInterval(() => this.heal(), HEAL_INTERVAL_MS);
    this.healer.unref();
  }

  /** Resolves once the broker has recorded the message (waiting in order while it is unreachable). */
  async publish(topic: string, event: string, data: string): Promise<Envelope> {
    // A broker in the process takes it at once while the link is ready; a remote one, at the end of the turn.
    const now = !this.broker.batching && this.link.state === 'ready';
    const sent = this.outbox.publish(topic, event, data, now);
    if (this.broker.batching) this.flushSoon();
    const position = await sent;
    // A broker in the process delivers a publication here before it answers, with the very
    // position object it answers: the envelope delivered is the result, built once.
    const delivered = this.lastDelivered;
    if (delivered?.position === position && isMessage(delivered.message, topic, event, data)) return delivered;
    return Envelope.create(position, topic, event, data);
  }

  /**
   * Sends an instance-wide command to every instance (this one included), live only.
   * @throws PushletBrokerError when the broker has stopped, or its own error when it cannot send it.
   */
  async control(command: PushletControlCommand): Promise<void> {
    if (this.link.state === 'stopped') throw new PushletBrokerError(MESSAGES.brokerHasStopped);
    // Without one, the broker serves this instance alone, where the caller has run it already.
    await this.broker.control?.(command);
  }

  /** This instance now has subscribers of `topic`; resolves once its messages will be delivered. */
  async watch(topic: string): Promise<void> {
    if (this.topics.has(topic)) return;
    const ready = this.link.state === 'ready';
    // Not ready: recovery subscribes it and reads what it missed after a safe start.
    const state: TopicState = { position: new TopicPosition(ready ? undefined : this.fallbackPosition()), confirmed: false };
    this.topics.set(topic, state);
    if (!ready) return;
    const generation = this.window?.generation;
    try {
      await this.broker.subscribe([topic]);
      const [position] = await this.broker.positions([topic]);
      if (position && (!state.position.last || comparePositions(position, state.position.last) > 0)) state.position.last = position;
      if (position && comparePositions(position, this.newestKnown) > 0) this.newestKnown = position;
      state.confirmed = true;
      // Subscribed before the position was read: everything after it reaches this instance live.
      if (this.window?.generation === generation && this.topics.get(topic) === state && state.position.last) this.window?.open(topic, state.position.last);
    } catch {
      // Not subscribed for sure: recover (which subscribes again and reads what was missed).
      this.lost();
    }
  }

  /** This instance no longer has subscribers of `topic`. */
  unwatch(topic: string): void {
    this.topics.delete(topic);
    this.window?.drop(topic);
    if (this.link.state === 'ready') this.broker.unsubscribe([topic]);
  }

  /**
   * This instance now has subscribers of `pattern`; resolves once the broker routes its topics here.
   * @throws PushletValidationError when the broker has no pattern routing.
   */
  async watchPattern(pattern: string): Promise<void> {
    const routing = this.patternRouting();
    if (this.patterns.get(pattern)) return;
    const ready = this.link.state === 'ready';
    const state: TopicState = { position: new TopicPosition(ready ? undefined : this.fallbackPosition()), confirmed: false };
    this.patterns.set(pattern, state);
    if (!ready) return;
    try {
      await routing.subscribe([pattern]);
      // Positions are ordered across topics: any topic's position is the broker's current one.
      const [position] = await this.positionReads.call([pattern]);
      if (position && (!state.position.last || comparePositions(position, state.position.last) > 0)) state.position.last = position;
      state.confirmed = true;
    } catch {
      this.lost();
    }
  }

  unwatchPattern(pattern: string): void {
    if (!this.patterns.delete(pattern)) return;
    if (this.link.state === 'ready') this.broker.patterns?.unsubscribe([pattern]);
  }

  /** Whether the broker routes patterns (positions ordered across topics, and {@link PushletBroker.patterns}). */
  get supportsPatterns(): boolean {
    return this.ordering === 'total' && this.broker.patterns !== undefined;
  }

  /** Each request's topic's messages after its position (see {@link ReplayResult}): {@link catchUp} without patterns. */
  async replay(requests: readonly ReplayRequest[]): Promise<ReplayResult> {
    return (await this.catchUp(requests, [])).topics;
  }

  /**
   * What a connection's catch-up replays: each topic's and each pattern's messages after its
   * position, together (see {@link ReplayResult}). A pattern's: the broker names the topics that
   * may hold some, the pattern picks its own, their history is read as a topic's is; incomplete
   * when the broker's topic list does not reach back to the position, or any of its topics'
   * history does not.
   *
   * With positions ordered across topics, a connection's id is the position of its newest
   * message, so its messages must go out in position order, and what is replayed must be one
   * snapshot: everything of every topic up to one point, what follows arriving live. The recent
   * window ends where this instance's live stream stands, a broker read where the broker stands
   * (ahead of it: a broker may answer a read before its live copy reaches here). So the window
   * answers a catch-up only whole, and topics and patterns are read in one call; mixed, a read
   * topic's newer message would go out before a windowed topic's older one arrived live, the ids
   * would go back, and a client resuming from its last id would get the newer one twice. With
   * positions per topic, each topic is its own snapshot and the window answers topic by topic.
   */
  async catchUp(requests: readonly ReplayRequest[], patterns: readonly PatternReplayRequest[]): Promise<{ topics: ReplayResult; patterns: ReplayResult }> {
    if (this.link.state !== 'ready') {
      return {
        topics: requests.length > 0 ? this.replayWhileDown(requests, this.topics) : NOTHING_REPLAYED,
        patterns:
          patterns.length > 0
            ? this.replayWhileDown(
                patterns.map(({ pattern, after }) => ({ topic: pattern, after })),
                this.patterns,
              )
            : NOTHING_REPLAYED,
      };
    }
    const total = this.ordering === 'total';
    // A topic followed here without a break since before the position: its window answers, exactly.
    let local: Envelope[] = [];
    let remote = requests;
    if (this.window && requests.length > 0 && !(total && patterns.length > 0)) {
      const answered: Envelope[][] = [];
      remote = requests.filter((request) => {
        const found = this.fromWindow(request);
        if (found) answered.push(found);
        return !found;
      });
      if (total && remote.length > 0) remote = requests;
      else local = answered.flat();
      this.counts.resumesFromWindow += requests.length - remote.length;
    }
    this.counts.resumesFromBroker += remote.length;
    if (remote.length === 0 && patterns.length === 0) {
      if (total && requests.length > 1) local.sort((a, b) => comparePositions(a.position, b.position));
      return { topics: { envelopes: local, incomplete: [], unknown: [] }, patterns: NOTHING_REPLAYED };
    }
    const expanded = patterns.length > 0 ? await this.expand(patterns) : undefined;
    const generation = this.window?.generation;
    const all = await this.reads.call(expanded ? [...remote, ...expanded.requests] : remote);
    const reads = all.slice(0, remote.length);
    const read = reads.map((topicRead) => topicRead.records.map(envelopeOf));
    if (this.window && this.window.generation === generation) this.backfill(remote, reads, read);
    let envelopes = total && read.length > 1 ? read.flat().sort((a, b) => comparePositions(a.position, b.position)) : read.flat();
    // Positions per topic only: with total ordering the window answers a catch-up whole or not at all.
    if (local.length > 0) envelopes = [...local, ...envelopes];
    const topics: ReplayResult = {
      envelopes,
      incomplete: reads.filter((read, i) => readVerdict(read, remote[i]!.after) === 'incomplete').map((read) => read.topic),
      unknown: reads.filter((read, i) => readVerdict(read, remote[i]!.after) === 'unknown').map((read) => read.topic),
    };
    if (!expanded) return { topics, patterns: NOTHING_REPLAYED };
    const patternReads = all.slice(remote.length);
    const verdicts = expanded.verdicts(patternReads);
    return {
      topics,
      patterns: {
        envelopes: withoutCopies(inOrder(patternReads, true)).map(envelopeOf),
        incomplete: patterns.filter((_, i) => verdicts[i]!.verdict === 'incomplete').map((request) => request.pattern),
        unknown: patterns.filter((_, i) => verdicts[i]!.verdict === 'unknown').map((request) => request.pattern),
      },
    };
  }

  /**
   * `request`'s messages from the recent window; `undefined` when the window does not reach back
   * (the broker is asked). The position must be no newer than one the broker has
   * handed out here (else it may be unknown, the broker's to judge): the topic's newest, or any
   * topic's (a connection's id names one position for all its topics with `ordering: 'total'`;
   * with positions per topic, a topic without messages lately has a position from a connection's
   * start, newer than its last message; the broker's clock orders both). One newer than the
   * topic's newest delivered here has nothing of it to replay yet: what follows reaches this
   * instance live, the window being complete.
   */
  private fromWindow(request: ReplayRequest): Envelope[] | undefined {
    let last = this.topics.get(request.topic)?.position.last;
    if (last && comparePositions(this.newestKnown, last) > 0) last = this.newestKnown;
    return last && this.window!.after(request.topic, request.after, last);
  }

  /**
   * Hands exact reads of watched topics to their windows ({@link RecentWindow.backfill}): the
   * next client resuming from as far back is answered without the broker. Only without a break
   * since the reads were asked for (the caller checks the window's generation).
   */
  private backfill(requests: readonly ReplayRequest[], reads: readonly TopicRead[], envelopes: readonly Envelope[][]): void {
    requests.forEach((request, i) => {
      const read = reads[i]!;
      if (!this.topics.get(request.topic)?.confirmed || readVerdict(read, request.after) !== 'exact') return;
      this.window!.backfill(request.topic, request.after, envelopes[i]!, read.readAt);
    });
  }

  /** Whether the broker can read the newest history of a topic ({@link tail}): rewind and history. */
  get canTail(): boolean {
    return typeof this.broker.tail === 'function';
  }

  /**
   * Each request's topic's newest messages still in history (at most `limit`, strictly before
   * `before` when given), oldest first: what rewind and history read. Only while the link is
   * ready, like a replay: the broker only reads, nothing here is recovery.
   * @throws PushletBrokerError while the broker cannot be read (not ready, or no `tail`).
   */
  async tail(requests: readonly TailAsk[]): Promise<Envelope[][]> {
    if (!this.tailReads) throw new PushletBrokerError(MESSAGES.historyUnsupported);
    if (this.link.state !== 'ready') throw new PushletBrokerError(MESSAGES.brokerNotConnected);
    const pages = await this.tailReads.call(requests);
    return pages.map((records) => records.map(envelopeOf));
  }

  /**
   * The newest `limit` messages of a pattern's topics still in history, oldest first (a pattern's
   * rewind): the broker names the topics holding any, each one's newest are read, the newest of all
   * kept.
   */
  async tailPattern(pattern: string, limit: number): Promise<Envelope[]> {
    if (this.link.state !== 'ready') throw new PushletBrokerError(MESSAGES.brokerNotConnected);
    const index = await this.patternRouting().topicsAfter({ ms: 0, seq: 0 }, [pattern]);
    const topics = index.topics.filter((topic) => matchesPattern(pattern, topic));
    if (topics.length === 0) return [];
    const pages = await this.tail(topics.map((topic) => ({ topic, limit })));
    return pages
      .flat()
      .sort((a, b) => comparePositions(a.position, b.position))
      .slice(-limit);
  }

  /**
   * For each topic, a position at or before every message of it not yet delivered here, and
   * after every one already delivered: a new connection starts from these, so that if it drops
   * before its first message, resuming from them loses nothing. While the broker cannot be asked,
   * a topic followed here without a break is exact from its newest delivered position; with
   * `estimate` (a client with no id, to whom older messages are no harm) an earlier position may
   * be answered; otherwise it rejects.
   */
  async positions(topics: readonly string[], estimate = false, kind: 'topic' | 'pattern' = 'topic'): Promise<Position[]> {
    const states: StateLookup = kind === 'pattern' ? this.patterns : this.topics;
    if (this.link.state === 'ready') {
      try {
        const positions = await this.positionReads.call(topics);
        for (const position of positions) this.noteSeen(position);
        return positions;
      } catch {
        // What this instance knows is still a safe start (see below).
      }
    }
    return topics.map((topic) => {
      const state = states.get(topic);
      if (state?.position.last && (state.confirmed || estimate)) return state.position.last;
      if (estimate) return this.fallbackPosition();
      throw new PushletBrokerError(MESSAGES.brokerNotConnected);
    });
  }

  async stop(): Promise<void> {
    if (!this.link.to('stopped')) return;
    if (this.healer) clearInterval(this.healer);
    if (this.outbox.size > 0) this.logger.warn(`${this.outbox.size} publications never reached ${this.broker.description}; their publish() calls fail`);
    this.outbox.rejectAll(new PushletBrokerError(MESSAGES.brokerStopped));
    try {
      await this.broker.stop();
    } finally {
      this.handler = undefined;
      this.topics.clear();
      this.window?.clear();
      this.held = undefined;
    }
  }

  /** The broker's presence store, told when the link is live again after an outage; none without one. */
  presenceStore(ttlMs: number): PresenceStore | undefined {
    return this.broker.presenceStore?.(ttlMs, (listener) => {
      this.readyListeners.add(listener);
      return () => this.readyListeners.delete(listener);
    });
  }

  stats(): RecoveryCoreStats {
    return {
      state: this.link.state,
      instanceId: this.instanceId,
      queued: this.outbox.size,
      ...this.counts,
      windowMessages: this.window?.retainedCount ?? 0,
      windowBytes: this.window?.retainedBytes ?? 0,
    };
  }

  /** Connected only while the link is `ready`; `queued` is what waits for the broker. */
  status(): PushletBrokerStatus {
    const state = this.link.state;
    return { connected: state === 'ready', state, queued: this.outbox.size };
  }

  // ---- the link ---------------------------------------------------------------------------

  private entered(state: BrokerLinkState, previous: BrokerLinkState): void {
    this.logger.debug?.(`broker link ${previous} -> ${state}`);
    if (state === 'down') {
      // Live messages may be missed from now on: no window is complete until recovery says so.
      this.window?.clear();
      this.held ??= new CatchUp();
      this.outbox.resend();
      if (previous === 'ready' && !this.outage) {
        this.outage = { recovered: 0, resets: 0 };
        this.logger.warn(`lost the connection to ${this.broker.description}: publications wait until it has recorded them`);
      }
    } else if (state === 'recovering') {
      this.held ??= new CatchUp();
      this.recovering = this.recover().finally(() => (this.recovering = undefined));
    } else if (state === 'ready') {
      this.outbox.flush();
      this.reportBack();
      for (const listener of this.readyListeners) listener();
    }
  }

  /**
   * For a remote broker: sends what the outbox holds once this event-loop turn's publications are
   * all in (after I/O callbacks and their promise chains), so that one call carries them all.
   */
  private flushSoon(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      if (this.link.state === 'ready') this.outbox.flush();
    });
  }

  /** Something was lost, or a call found the broker unreachable. */
  private lost(): void {
    const state = this.link.state;
    if (state === 'ready' || state === 'recovering') this.link.to('down');
  }

  /** Tries to recover when the link is down and the broker is connected again. */
  private heal(): void {
    if (this.link.state === 'down' && this.broker.isConnected()) this.link.to('recovering');
  }

  /**
   * Prepares the broker, then in rounds subscribes every watched topic and reads its history
   * after the newest position delivered here: what is new is delivered, then the live records
   * held meanwhile; topics whose history was lost get a gap. Topics watched while a round runs are
   * not in its subscriptions: the next round takes those (few, so the rounds end). Any failure
   * sends the link down again (and healing retries).
   */
  private async recover(): Promise<void> {
    const epoch = this.link.epoch;
    const current = () => this.link.epoch === epoch;
    let step = 'prepare';
    try {
      await this.broker.prepare?.();
      const subscribed = new Set<string>();
      const subscribedPatterns = new Set<string>();
      for (let round = 1; ; round++) {
        const topics = [...this.topics.keys()].filter((topic) => !subscribed.has(topic));
        const patterns = this.patterns.entries().filter(([pattern]) => !subscribedPatterns.has(pattern));
        if (topics.length === 0 && patterns.length === 0) break;
        if (round > MAX_RECOVERY_ROUNDS) throw new Error(`topics kept arriving for ${MAX_RECOVERY_ROUNDS} rounds`);
        this.held ??= new CatchUp();
        step = 'subscribe';
        for (const topic of topics) subscribed.add(topic);
        for (const [pattern] of patterns) subscribedPatterns.add(pattern);
        await this.broker.subscribe(topics);
        if (patterns.length > 0) await this.patternRouting().subscribe(patterns.map(([pattern]) => pattern));
        step = 'read';
        const requests = topics
          .filter((topic) => this.topics.has(topic))
          .map((topic) => {
            const state = this.topics.get(topic)!;
            state.position.last ??= this.fallbackPosition();
            return { topic, after: state.position.last };
          });
        const patternRequests = patterns.map(([pattern, state]) => ({ pattern, after: (state.position.last ??= this.fallbackPosition()) }));
        const generation = this.window?.generation;
        const expanded = patternRequests.length > 0 ? await this.expand(patternRequests) : undefined;
        const reads = await this.reads.call(expanded ? [...requests, ...expanded.requests] : requests);
        if (!current()) return;
        await this.deliverRecovered(
          reads,
          requests,
          expanded && { requests: patternRequests, verdicts: expanded.verdicts(reads.slice(requests.length)) },
          generation,
        );
        if (!current()) return;
      }
      // No round ran (nothing watched yet): what was held meanwhile is live now.
      const held = this.held;
      this.held = undefined;
      if (held) await held.finish([], (record) => void this.accept(record));
      if (!current()) return;
      this.everReady = true;
      this.lastRecoveryError = undefined;
      this.link.to('ready');
    } catch (error) {
      this.lastRecoveryError = error;
      this.logger.debug?.(`recovery from ${this.broker.description} failed at ${step}: ${reason(error)}`);
      if (current() && this.link.state === 'recovering') this.link.to('down');
    }
  }

  private async deliverRecovered(
    reads: readonly TopicRead[],
    requests: readonly ReplayRequest[],
    patterns?: { requests: readonly PatternReplayRequest[]; verdicts: readonly PatternVerdict[] },
    generation?: number,
  ): Promise<void> {
    // The first recovery starts from estimated positions, and a new backend has no history yet:
    // only a topic (or pattern) this instance has followed through the broker can have lost something.
    const lostHere = () => {
      this.counts.resets += 1;
      if (this.outage) this.outage.resets += 1;
    };
    for (const [i, request] of requests.entries()) {
      const read = reads[i]!;
      if (readVerdict(read, request.after) === 'exact' || !this.topics.has(read.topic) || !this.everReady) continue;
      lostHere();
      this.handler?.gap(read.topic, read.floor);
    }
    for (const [i, { pattern }] of (patterns?.requests ?? []).entries()) {
      const { verdict, floor } = patterns!.verdicts[i]!;
      if (verdict === 'exact' || !this.patterns.get(pattern) || !this.everReady) continue;
      lostHere();
      this.handler?.gapPattern?.(pattern, floor);
    }
    const held = this.held ?? new CatchUp<BrokerRecord>();
    this.held = undefined;
    const recovered = inOrder(reads, this.ordering === 'total');
    let fromHistory = recovered.length;
    await held.finish(recovered, (record) => {
      const delivered = this.accept(record);
      if (fromHistory > 0) {
        fromHistory -= 1;
        if (delivered) {
          this.counts.recovered += 1;
          if (this.outage) this.outage.recovered += 1;
        }
      }
    });
    // Everything up to the read is delivered or announced lost: start from there next time.
    for (const read of reads.slice(0, requests.length)) {
      const state = this.topics.get(read.topic);
      if (state) moveTo(state, read.readAt);
    }
    // Without a break since the read (the window cleared), each topic is complete from its
    // request's position if its history reached back, from its new position otherwise.
    if (this.window && this.window.generation === generation) {
      for (const [i, request] of requests.entries()) {
        const state = this.topics.get(request.topic);
        if (!state?.position.last) continue;
        this.window.open(request.topic, readVerdict(reads[i]!, request.after) === 'exact' ? request.after : state.position.last);
      }
    }
    for (const [i, { pattern }] of (patterns?.requests ?? []).entries()) {
      const state = this.patterns.get(pattern);
      if (state) moveTo(state, patterns!.verdicts[i]!.readAt);
    }
  }

  /**
   * Asks the broker which topics may hold records after the earliest of `requests`, and gives
   * each pattern its topics' reads to make, and how to judge them once read.
   */
  private async expand(requests: readonly PatternReplayRequest[]) {
    let earliest = requests[0]!.after;
    for (const { after } of requests) if (comparePositions(after, earliest) < 0) earliest = after;
    const index = await this.patternRouting().topicsAfter(
      earliest,
      requests.map((request) => request.pattern),
    );
    const reads: ReplayRequest[] = [];
    const owners: number[] = [];
    requests.forEach(({ pattern, after }, i) => {
      for (const topic of index.topics) {
        if (!matchesPattern(pattern, topic)) continue;
        reads.push({ topic, after });
        owners.push(i);
      }
    });
    return {
      requests: reads,
      /** Per pattern: exact, incomplete (the index or a topic's history does not reach back) or unknown. */
      verdicts: (topicReads: readonly TopicRead[]): PatternVerdict[] =>
        requests.map(({ after }, i) => {
          let verdict: PatternVerdict['verdict'] = readVerdict(index, after);
          let floor = index.floor;
          let readAt = index.readAt;
          topicReads.forEach((read, at) => {
            if (owners[at] !== i) return;
            if (verdict === 'exact' && readVerdict(read, after) !== 'exact') verdict = readVerdict(read, after);
            if (comparePositions(read.floor, floor) > 0) floor = read.floor;
            if (comparePositions(read.readAt, readAt) < 0) readAt = read.readAt;
          });
          return { verdict, floor, readAt };
        }),
    };
  }

  private patternRouting(): BrokerPatterns {
    if (!this.supportsPatterns) throw new PushletValidationError(MESSAGES.patternUnavailable);
    return this.broker.patterns!;
  }

  // ---- receiving --------------------------------------------------------------------------

  private onRecords(records: readonly BrokerRecord[]): void {
    for (const record of records) {
      this.counts.received += 1;
      if (this.held?.hold(record)) {
        if (this.held.heldCount > this.maxQueued) this.overflowHeld();
        continue;
      }
      this.accept(record);
    }
  }

  /**
   * History stays unreadable while live records pile up: stop holding them, and tell every
   * subscriber that messages may be missing. Positions move past what recovery would have read:
   * it reads from there.
   */
  private overflowHeld(): void {
    const held = this.held?.abandon() ?? [];
    this.held = new CatchUp();
    this.window?.clear();
    for (const topic of this.topics.keys()) this.handler?.gap(topic);
    for (const [pattern] of this.patterns.entries()) this.handler?.gapPattern?.(pattern);
    for (const record of held) this.accept(record);
  }

  /** Delivers a record unless this instance has delivered it already. */
  private accept(record: BrokerRecord): boolean {
    const state = this.topics.get(record.topic);
    const matched = this.patterns.size > 0 ? this.patterns.match(record.topic) : NONE;
    if (!state && matched.length === 0) {
      this.counts.receivedUnwatched += 1;
      return false;
    }
    // New to the topic or to one of its patterns: a copy (history and live, or routed twice by an
    // exact and a pattern subscription) is new to none of them.
    const freshToTopic = state?.position.advance(record.position) ?? false;
    let fresh = freshToTopic;
    for (const pattern of matched) if (pattern.position.advance(record.position)) fresh = true;
    if (!fresh || !this.firstCopy(record)) {
      this.counts.duplicatesDropped += 1;
      return false;
    }
    this.noteSeen(record.position);
    if (state) state.confirmed = true;
    for (const pattern of matched) pattern.confirmed = true;
    this.counts.delivered += 1;
    const envelope = envelopeOf(record);
    if (freshToTopic) this.window?.append(envelope);
    this.lastDelivered = envelope;
    this.handler?.message(envelope);
    return true;
  }

  /** False for a publication already delivered here under another position (recorded twice). */
  private firstCopy(record: BrokerRecord): boolean {
    if (record.origin === undefined || record.counter === undefined) return true;
    return this.recent.add(record.origin, record.counter, formatPosition(record.position));
  }

  // ---- helpers ----------------------------------------------------------------------------

  /** With `ordering: 'total'`: notes a position from the broker. */
  private noteSeen(position: Position): void {
    if (comparePositions(position, this.newestKnown) > 0) this.newestKnown = position;
    if (this.ordering === 'total' && comparePositions(position, this.lastSeen) > 0) this.lastSeen = position;
  }

  /**
   * A start for a topic this instance has no position of, while the broker cannot be asked: the
   * newest position seen (positions ordered across topics), else the local clock less a margin
   * for skew. Either is at or before every message not yet delivered here, so it can only add
   * older messages.
   */
  private fallbackPosition(): Position {
    if (this.ordering === 'total' && this.lastSeen.ms > 0) return this.lastSeen;
    // Positions that are not times (JetStream: the stream's creation and sequence) cannot be
    // estimated from a clock: with nothing from the broker yet, the very start is the safe one.
    if (this.broker.clock === 'sequence') return { ms: 0, seq: 0 };
    return { ms: Date.now() - CLOCK_SKEW_MARGIN_MS, seq: 0 };
  }

  /**
   * Without the broker, history cannot be read; but a topic watched here will get, once the link
   * recovers, everything after the newest position delivered here: a request from there or later
   * is complete with nothing to replay yet. Anything older cannot be served now.
   */
  private replayWhileDown(requests: readonly ReplayRequest[], states: StateLookup): ReplayResult {
    for (const { topic, after } of requests) {
      const state = states.get(topic);
      const last = state?.position.last;
      if (!state || !last) throw new PushletBrokerError(MESSAGES.brokerNotConnected);
      if (comparePositions(after, last) >= 0) continue;
      // An estimate may move back: recovery then reads from earlier, which only adds older messages.
      if (!state.confirmed) state.position.last = after;
      else throw new PushletBrokerError(MESSAGES.brokerNotConnected);
    }
    return { envelopes: [], incomplete: [], unknown: [] };
  }

  private reportBack(): void {
    const outage = this.outage;
    if (!outage) {
      if (this.everReady && !this.reportedStart) {
        this.reportedStart = true;
        this.logger.log(`broker: ${this.broker.description} (instance ${this.instanceId})`);
      }
      return;
    }
    this.outage = undefined;
    const resets = outage.resets > 0 ? `; history was lost, ${outage.resets} topics told pushlet:reset` : '';
    this.logger.log(`connected to ${this.broker.description} again: recovered ${outage.recovered} messages from history${resets}`);
  }
}

/**
 * Whether a read continues a position `after` exactly: `unknown` past what the broker had handed
 * out, `incomplete` before the history's floor (something after it may be gone).
 */
export function readVerdict(read: Pick<TopicRead, 'floor' | 'limit'>, after: Position): 'exact' | 'incomplete' | 'unknown' {
  if (comparePositions(after, read.limit) > 0) return 'unknown';
  return comparePositions(after, read.floor) < 0 ? 'incomplete' : 'exact';
}

/** How a pattern's reads judge its resume. */
interface PatternVerdict {
  readonly verdict: 'exact' | 'incomplete' | 'unknown';
  /** From here on its history is complete. */
  readonly floor: Position;
  /** Everything of it up to here was read. */
  readonly readAt: Position;
}

const NONE: readonly TopicState[] = [];
const NOTHING_REPLAYED: ReplayResult = { envelopes: [], incomplete: [], unknown: [] };

/** Topic states by topic, or pattern states by pattern. */
type StateLookup = { get(key: string): TopicState | undefined };

/** Moves a state's position forward to `position` (a read up to there is delivered or announced lost). */
function moveTo(state: TopicState, position: Position): void {
  if (!state.position.last || comparePositions(state.position.last, position) < 0) state.position.last = position;
  state.confirmed = true;
}

/**
 * Messages in position order without a second copy of one (a topic read for two patterns, or
 * replayed for a topic and a pattern): copies sit next to each other once sorted.
 */
export function withoutCopies<T extends { readonly position: Position; readonly topic: string }>(sorted: readonly T[]): T[] {
  return sorted.filter((item, i) => i === 0 || comparePositions(sorted[i - 1]!.position, item.position) !== 0 || sorted[i - 1]!.topic !== item.topic);
}

/** Every topic's records: merged in position order where positions are global, each topic's in its order otherwise. */
function inOrder(reads: readonly TopicRead[], global: boolean): BrokerRecord[] {
  const all = reads.flatMap((read) => read.records);
  if (global && reads.length > 1) all.sort((a, b) => comparePositions(a.position, b.position));
  return all;
}

function isMessage(message: PushletMessage, topic: string, event: string, data: string): boolean {
  return message.topic === topic && message.event === event && message.data === data;
}

function envelopeOf(record: BrokerRecord): Envelope {
  return Envelope.create(record.position, record.topic, record.event, record.data, record.time);
}

/**
 * Reads history for many readers at once (see {@link PerTurn}): each topic once, after the
 * earliest position any reader asked for, then each reader's part of it.
 */
export async function readMany(broker: PushletBroker, readers: ReadonlyArray<readonly ReplayRequest[]>): Promise<TopicRead[][]> {
  const earliest = new Map<string, Position>();
  for (const requests of readers) {
    for (const { topic, after } of requests) {
      const known = earliest.get(topic);
      if (!known || comparePositions(after, known) < 0) earliest.set(topic, after);
    }
  }
  if (earliest.size === 0) return readers.map(() => []);
  const merged = await broker.read([...earliest].map(([topic, after]) => ({ topic, after })));
  const byTopic = new Map(merged.map((read) => [read.topic, { read, after: earliest.get(read.topic)! }]));
  return readers.map((requests) => requests.map(({ topic, after }) => readAfter(byTopic.get(topic)!, after)));
}

/** A read of a topic after an earlier (or equal) position, cut for a reader at `after`. */
function readAfter({ read, after: readFrom }: { read: TopicRead; after: Position }, after: Position): TopicRead {
  if (comparePositions(after, readFrom) === 0) return read;
  return { ...read, records: read.records.filter((record) => comparePositions(record.position, after) > 0) };
}

/** What {@link RecoveryCore.tail} asks of a topic (the broker's `TailRequest`). */
type TailAsk = { readonly topic: string; readonly limit: number; readonly before?: Position };

/**
 * Newest history for many readers at once (see {@link PerTurn}): each topic (and `before`) read
 * once with the largest limit asked, then each reader's newest `limit` of it.
 */
export async function tailMany(
  tail: (requests: readonly TailAsk[]) => Promise<BrokerRecord[][]>,
  readers: ReadonlyArray<readonly TailAsk[]>,
): Promise<BrokerRecord[][][]> {
  const key = ({ topic, before }: TailAsk) => (before ? `${formatPosition(before)} ${topic}` : ` ${topic}`);
  const merged = new Map<string, TailAsk>();
  for (const requests of readers) {
    for (const request of requests) {
      const known = merged.get(key(request));
      if (!known || request.limit > known.limit) merged.set(key(request), request);
    }
  }
  if (merged.size === 0) return readers.map(() => []);
  const asks = [...merged.values()];
  const pages = await tail(asks);
  const byKey = new Map(asks.map((ask, i) => [key(ask), pages[i] ?? []]));
  return readers.map((requests) => requests.map((request) => (request.limit > 0 ? byKey.get(key(request))!.slice(-request.limit) : [])));
}

/** Positions for many callers at once: each topic asked once. */
export async function positionsMany(broker: PushletBroker, lists: ReadonlyArray<readonly string[]>): Promise<Position[][]> {
  const topics = [...new Set(lists.flat())];
  if (topics.length === 0) return lists.map(() => []);
  const positions = await broker.positions(topics);
  const byTopic = new Map(topics.map((topic, i) => [topic, positions[i]!]));
  return lists.map((list) => list.map((topic) => byTopic.get(topic)!));
}

function reason(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return reason(error.errors[0]);
  return error instanceof Error ? error.message : String(error);
}
