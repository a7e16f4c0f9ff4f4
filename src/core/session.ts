import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { PushletTransport } from '../protocol/frames.js';
import type { DeliveryMeter } from './counters.js';
import { EVENTS, resetNotice, topicsNotice, type CommandRef, type Notice, type PushletIdentity, type ResetData } from '../protocol/frames.js';
import { comparePositions, formatPosition, parseResumeId, topicHash, type Position } from '../protocol/ids.js';
import { ResumeCursorWriter } from './resume-cursor.js';
import { MESSAGES } from '../pushlet.messages.js';
import { BoundedWriter, type WriteQueue } from './bounded-writer.js';
import { clientAddress } from './client-address.js';
import type { ConnectionSlot } from './connection-tracker.js';
import type { Envelope } from './envelope.js';
import { PushletError } from './errors.js';
import { sessionEndWire, type SessionEndReason } from './session-end.js';
import { Feed, type CaughtUp, type FeedReset, type FeedSink, type TopicStart } from './feed.js';
import { TopicRegistry } from './topic-registry.js';
import { BROADCAST_TOPIC, isPattern } from '../protocol/topics.js';

export type { SessionEndReason } from './session-end.js';

/** Longest delay `setTimeout` takes (about 24.8 days); a later expiry is re-armed when it fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * What a transport does for a session: encode and write frames. Nothing else: admission, resume,
 * gaps and the end of the connection are the session's.
 */
export interface SessionOutput {
  /**
   * Writes a message. `id` is the resume id the client should keep for it when that is not the
   * message's own id (brokers that order per topic); `undefined` means the message's own id, so
   * the transport can write the encoding shared by every subscriber.
   */
  message(envelope: Envelope, id: string | undefined): void;
  /** Writes a reply or notice. */
  notice(notice: Notice): void;
  /** What the session's {@link BoundedWriter} watches. */
  readonly queue: WriteQueue;
  /**
   * The server ends the connection (the transport closes it its own way: close code, end of
   * stream). `detail`: the reason given to `disconnect()`.
   */
  end(reason: SessionEndReason, detail?: string): void;
  /** How its deliveries are counted (its transport, and the bytes of its frames). */
  readonly meter?: DeliveryMeter;
}

/** What the session needs from the module's runtime (the hub gives it: admission, presence, counters). */
export interface SessionContext {
  readonly feedOf: (sink: FeedSink, meter: DeliveryMeter | undefined) => Feed;
  readonly ordering: 'total' | 'per-topic';
  readonly bufferBytes: number;
  /** Most messages a rewind delivers per topic (`limits.maxRewind`); larger asks are capped. Default: no rewind. */
  readonly maxRewind?: number;
  readonly validateTopics: (topics: readonly unknown[], subscribed: readonly string[]) => void;
  readonly authorize: (topics: readonly string[], transport: PushletTransport, request: IncomingMessage, identity: PushletIdentity | null) => Promise<void>;
  readonly slowConsumer: (transport: PushletTransport, address: string) => void;
  /** Topics of the session became live (presence: each presence topic gains a member). */
  readonly joined?: (session: Session, topics: readonly string[]) => void;
  /** The session let go of topics, or ended (presence: its memberships end). */
  readonly left?: (session: Session, topics: readonly string[]) => void;
  /** The heartbeat interval now, announced in `pushlet:connected` (`heartbeat`) so that clients can tell a dead link. */
  readonly heartbeatMs?: () => number;
  /** A connection was turned away before it started, by `error` (counted under its reason, if it is a refusal). */
  readonly refused: (error: unknown) => void;
  /** A resume was answered (`caughtUp.resets` > 0: with a reset). */
  readonly resumed: (caughtUp: CaughtUp) => void;
  readonly closed: (session: Session) => void;
}

/** A topic a client asked for and may not have, and why. */
export interface RefusedTopic {
  readonly topic: string;
  readonly reason: string;
}

/**
 * One connection's life, for every transport (the SSE route, the WebSocket endpoint,
 * `PushletService.stream()`): topic admission, the start position, `pushlet:connected`,
 * subscribe and unsubscribe with resume, gap notices, the outgoing bound and the end.
 */
export class Session implements FeedSink {
  readonly feed: Feed;
  readonly writer: BoundedWriter;
  private ended = false;
  /** Writes this connection's resume cursor (brokers that order ids per topic), from its first message. */
  private cursor: ResumeCursorWriter | undefined;
  private disposed = false;
  /** The subscriptions and timers are released (by {@link end} or {@link dispose}). */
  private stopped = false;
  /** The `ref` of the command being run, echoed in the resets it causes. */
  private ref: CommandRef | undefined;
  /** This connection, unique per instance and across instances (presence members are named by it). */
  readonly clientId = randomUUID();
  /** When the session opened (a number: a `Date` per idle connection costs more than its field). */
  private readonly openedAt = Date.now();
  /** Ends the session when its identity expires (only while it has an `expiresAt`, once started). */
  private expiry: NodeJS.Timeout | undefined;
  /** `start()` was called: frames may be written. */
  private started = false;
  /** With `ordering: 'total'`: the newest id the client may hold (the connected one, then each message's). */
  private highWater: Position | undefined;
  /**
   * With `ordering: 'total'`: topics being rewound on a connection that already handed out an id,
   * with that id's position. Their rewound messages at or before it carry it as their id, so that
   * the connection's ids never go back: a client that drops in the middle resumes its other topics
   * exactly (at worst the rest of an interrupted rewind, older than the subscription, is not sent
   * again).
   */
  private rewoundBelow: Map<string, Position> | undefined;

  constructor(
    private readonly context: SessionContext,
    private readonly output: SessionOutput,
    readonly transport: PushletTransport,
    /** The client's address when admission read it (see {@link address}). */
    private knownAddress: string | undefined,
    private readonly slot: ConnectionSlot,
    readonly request?: IncomingMessage,
    /** Who the connection is (`authenticate`), `null` when anonymous; a `refresh` replaces it. */
    public identity: PushletIdentity | null = null,
  ) {
    // Only connections are counted: sessions with a request (server-side consumers have none).
    this.feed = context.feedOf(this, request ? output.meter : undefined);
    this.writer = new BoundedWriter(output.queue, context.bufferBytes, this);
  }

  /**
   * Replaces the connection's identity (a WebSocket `refresh`): the expiry follows the new one.
   * The caller has checked that it names the same user.
   */
  refreshIdentity(identity: PushletIdentity): void {
    this.identity = identity;
    this.armExpiry();
  }

  /**
   * (Re)arms the expiry timer from the identity's `expiresAt`. Only once the session has started:
   * before that, no frame may be written (an SSE stream has no headers yet); an identity that
   * expired meanwhile ends the session on the next turn. Always through a timer, never from here:
   * the caller may be setting the session up.
   */
  private armExpiry(): void {
    clearTimeout(this.expiry);
    this.expiry = undefined;
    const expiresAt = this.identity?.expiresAt;
    if (expiresAt === undefined || this.ended || !this.started) return;
    const delay = Math.max(0, expiresAt - Date.now());
    this.expiry = setTimeout(() => (Date.now() >= expiresAt ? this.end('expired') : this.armExpiry()), Math.min(delay, MAX_TIMER_MS));
    this.expiry.unref();
  }

  /** The client's address ({@link clientAddress}), read when first needed: a system call per connection otherwise. */
  get address(): string {
    return (this.knownAddress ??= clientAddress(this.request));
  }

  /** When the session opened. */
  get since(): Date {
    return new Date(this.openedAt);
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** The topics and patterns subscribed (broadcasts not included). */
  get topics(): string[] {
    return [...TopicRegistry.subscribed(this.feed.topics), ...this.feed.patterns];
  }

  /**
   * Checks every topic against the contract, the limit and `authorize`; throws the first
   * problem (SSE and `stream()`: the whole request is refused).
   */
  async admitAll(topics: readonly string[]): Promise<void> {
    try {
      this.context.validateTopics(topics, []);
      if (this.request) await this.context.authorize(topics, this.transport, this.request, this.identity);
    } catch (error) {
      this.refused(error);
      throw error;
    }
  }

  /**
   * Checks that the connection may read `topic`'s history: the topic rules and `authorize`, as
   * for a subscription (but not the connection's topic limit: nothing is subscribed).
   */
  async admitRead(topic: string): Promise<void> {
    this.context.validateTopics([topic], []);
    if (this.request) await this.context.authorize([topic], this.transport, this.request, this.identity);
  }

  /** Checks each topic on its own (WebSocket): the refused ones are named with their reason. */
  async admitEach(topics: readonly string[]): Promise<{ accepted: string[]; refused: RefusedTopic[] }> {
    const accepted: string[] = [];
    const refused: RefusedTopic[] = [];
    for (const topic of topics) {
      if (this.feed.has(topic, isPattern(topic))) {
        accepted.push(topic);
        continue;
      }
      try {
        this.context.validateTopics([topic], [...this.topics, ...accepted]);
        if (this.request) await this.context.authorize([topic], this.transport, this.request, this.identity);
        accepted.push(topic);
      } catch (error) {
        if (!(error instanceof PushletError)) throw error;
        refused.push({ topic, reason: error.message });
      }
    }
    return { accepted, refused };
  }

  /**
   * Subscribes the connection's first topics and broadcasts, resuming after `lastEventId` when
   * given. `pushlet:connected` goes out first, with the position to resume from should the
   * connection drop before its first message (then any `refused` topics as errors); then resets,
   * missed messages and live ones. `rewind`: without `lastEventId`, each topic's latest messages
   * first (capped by `limits.maxRewind`; broadcasts are not rewound).
   */
  async start(topics: readonly string[], lastEventId: string | undefined, refused: readonly RefusedTopic[] = [], rewind = 0): Promise<void> {
    this.started = true;
    this.armExpiry();
    const starts = [...this.starts(topics, lastEventId, rewind), ...this.starts([BROADCAST_TOPIC], lastEventId, 0, false)];
    let caughtUp: CaughtUp | undefined;
    try {
      caughtUp = await this.feed.add(starts, (resets) => {
        if (this.ended) return;
        if (this.context.ordering === 'total') this.highWater = this.oldestPosition();
        this.output.notice(topicsNotice(EVENTS.connected, topics, { id: this.resumeId() }, this.resetData(resets), this.context.heartbeatMs?.()));
        for (const { topic, reason } of refused) this.output.notice({ event: EVENTS.error, data: reason, topic });
      });
    } catch (error) {
      this.refused(error);
      throw error;
    }
    this.live(topics);
    this.countResume(lastEventId, caughtUp);
  }

  /** Subscribes more topics and patterns (WebSocket), resuming them after `lastEventId` when given, else rewinding them by `rewind`; with `broadcasts`, those too. */
  async subscribe(topics: readonly string[], lastEventId: string | undefined, ref: CommandRef | undefined, rewind = 0, broadcasts = false): Promise<void> {
    this.ref = ref;
    const ceiling = rewind > 0 && lastEventId === undefined ? this.highWater : undefined;
    if (ceiling) for (const topic of topics) (this.rewoundBelow ??= new Map()).set(topic, ceiling);
    try {
      const starts = this.starts(topics, lastEventId, rewind);
      if (broadcasts) starts.push(...this.starts([BROADCAST_TOPIC], lastEventId, 0, false));
      const caughtUp = await this.feed.add(starts);
      this.live(topics);
      this.countResume(lastEventId, caughtUp);
    } finally {
      this.ref = undefined;
      if (ceiling) for (const topic of topics) this.rewoundBelow?.delete(topic);
    }
  }

  unsubscribe(topics: readonly string[]): void {
    const removed = topics.filter((topic) => this.feed.remove(topic, isPattern(topic)));
    const left = removed.filter((topic) => !isPattern(topic));
    if (left.length > 0) this.context.left?.(this, left);
  }

  /** Tells presence which of `topics` are live now (those still subscribed once their catch-up is done). */
  private live(topics: readonly string[]): void {
    if (this.ended || !this.context.joined) return;
    const held = TopicRegistry.subscribed(topics).filter((topic) => !isPattern(topic) && this.feed.has(topic));
    if (held.length > 0) this.context.joined(this, held);
  }

  /** Writes a reply or notice (unless the session has ended). */
  notice(notice: Notice): void {
    if (!this.ended) this.output.notice(notice);
  }

  deliver(envelope: Envelope): void {
    if (this.ended) return;
    if (this.context.ordering === 'per-topic') return this.output.message(envelope, this.resumeId());
    const ceiling = this.rewoundBelow?.get(envelope.topic);
    if (ceiling && comparePositions(envelope.position, ceiling) <= 0) return this.output.message(envelope, formatPosition(ceiling));
    if (!this.highWater || comparePositions(envelope.position, this.highWater) > 0) this.highWater = envelope.position;
    this.output.message(envelope, undefined);
  }

  /** Tells that messages of `topics` may be missing, for `reason` (see {@link TopicRegistry.named}). */
  gap(topics: readonly string[], reason: string): void {
    if (this.ended) return;
    this.output.notice(resetNotice(TopicRegistry.named(topics), reason, this.ref));
  }

  /** What `pushlet:connected` says of the resets that follow it (all of them, their reasons joined); none without any. */
  private resetData(resets: readonly FeedReset[]): ResetData | undefined {
    if (resets.length === 0) return undefined;
    return { topics: TopicRegistry.named(resets.flatMap((reset) => reset.topics)), reason: resets.map((reset) => reset.reason).join('; ') };
  }

  whenWritable(): Promise<void> | undefined {
    return this.ended ? undefined : this.writer.whenWritable();
  }

  /**
   * The id that resumes this connection where it stands now (sent with `pushlet:connected`): a
   * cursor of every topic's own position (ids ordered per topic), or the oldest of the topics'
   * positions (ids ordered across topics; a topic restarted from now must not carry the others
   * past messages they have yet to replay).
   */
  resumeId(): string {
    if (this.context.ordering === 'per-topic') return (this.cursor ??= new ResumeCursorWriter()).write(this.feed.topicPositions);
    return formatPosition(this.oldestPosition());
  }

  /** The oldest of the topics' positions (ids ordered across topics). */
  private oldestPosition(): Position {
    let oldest: Position | undefined;
    for (const last of this.feed.positions()) {
      if (last && (!oldest || comparePositions(last, oldest) < 0)) oldest = last;
    }
    return oldest ?? { ms: 0, seq: 0 };
  }

  /**
   * The server ends the connection: no more frames, the transport closes it. An expired identity
   * and a `disconnect()` are told with a last notice (`pushlet:expired`, `pushlet:disconnected`
   * with `detail`) before the end.
   */
  end(reason: SessionEndReason, detail?: string): void {
    if (this.ended) return;
    const notice = sessionEndWire(reason, detail).notice;
    // Not before the start: an SSE stream has no headers yet (the transport ends it its own way).
    if (this.started && notice) this.output.notice(notice);
    this.stop();
    this.output.end(reason, detail);
  }

  /** The connection is gone, however it ended: releases everything, once. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.stop();
    this.slot.release();
    this.context.closed(this);
  }

  /** No more frames: the expiry, the memberships and the subscriptions end (once, whichever of end and dispose comes first). */
  private stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.ended = true;
    clearTimeout(this.expiry);
    this.context.left?.(
      this,
      this.topics.filter((topic) => !isPattern(topic)),
    );
    this.feed.close();
  }

  /** Counts a connection turned away (connections only, not server-side consumers). */
  private refused(error: unknown): void {
    if (this.request) this.context.refused(error);
  }

  private countResume(lastEventId: string | undefined, caughtUp: CaughtUp | undefined): void {
    if (lastEventId !== undefined && caughtUp && this.request) this.context.resumed(caughtUp);
  }

  /** Its writer's bound was passed: a slow consumer, ended (called by {@link writer}). */
  overflow(): void {
    if (this.ended) return;
    this.context.slowConsumer(this.transport, this.address);
    this.end('slow');
  }

  /**
   * Where each topic starts, from the client's id: checked against the grammar first, and never
   * trusted further than it can be (a plain position cannot place topics that order their own
   * ids; a cursor without a topic's entry cannot place that topic). A rewind applies only where no
   * id was given: an id always wins.
   */
  private starts(names: readonly string[], lastEventId: string | undefined, rewind = 0, patterns = true): TopicStart[] {
    const topics = names.map((topic) => ({ topic, pattern: patterns && isPattern(topic) }));
    if (lastEventId === undefined) {
      // Broadcasts are not rewound (`patterns` false: the broadcast topic's own start).
      const count = patterns ? Math.min(rewind, this.context.maxRewind ?? 0) : 0;
      return topics.map((start) => (count > 0 ? { ...start, rewind: count } : start));
    }
    const id = parseResumeId(lastEventId);
    const unknown = topics.map((start) => ({ ...start, resetReason: MESSAGES.resetUnknownId }));
    if (!id) return unknown;
    if (id.kind === 'position') {
      return this.context.ordering === 'total' ? topics.map((start) => ({ ...start, after: id.position })) : unknown;
    }
    if (this.context.ordering === 'total') return unknown;
    const hashes = names.map((topic) => topicHash(topic));
    return names.map((topic, i) => {
      const hash = hashes[i]!;
      const after = id.positions.get(hash);
      const ambiguous = hashes.indexOf(hash) !== i || hashes.lastIndexOf(hash) !== i;
      return after && !ambiguous ? { topic, after } : { topic, resetReason: MESSAGES.resetCursorIncomplete };
    });
  }
}
