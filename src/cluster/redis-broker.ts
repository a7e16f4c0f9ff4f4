import { randomBytes } from 'node:crypto';
import type { LoggerService } from '@nestjs/common';
import { CatchUp, TopicPosition } from '../core/catch-up.js';
import { PerTurn } from '../core/per-turn.js';
import { Envelope } from '../core/envelope.js';
import { compareIds, parseId, type ParsedId } from '../core/message-id.js';
import { BROADCAST_TOPIC } from '../core/topic.js';
import type { BrokerEventHandler, PushletBroker, PushletBrokerStatus, PushletControlCommand, ReplayRequest, ReplayResult } from '../interfaces/broker.interface.js';
import { encodeControl, parseControl } from '../core/control.js';
import { MESSAGES } from '../pushlet.messages.js';
import { receivePublications, type Received } from './redis-codec.js';
import { RedisConnections, type RedisLinkListener } from './redis-connections.js';
import { RecentPublications } from './redis-dedupe.js';
import { PushletRedisError, PushletRedisUnavailableError, withTimeout } from './redis-errors.js';
import { inOrder, RedisHistory, type RedisHistoryLimits, type TopicReplay } from './redis-history.js';
import { RedisKeys } from './redis-keys.js';
import { RedisLink, type RedisLinkState } from './redis-link.js';
import { RedisOutbox } from './redis-outbox.js';
import { RedisPresenceStore } from './redis-presence.js';
import { describeSource, type ResolvedRedisOptions } from './redis-options.js';

/** Rounds of recovery (subscribe and read the topics watched meanwhile) before giving up and trying again later. */
const MAX_RECOVERY_ROUNDS = 20;
/** How often a broker whose link is down checks whether it can recover. */
const HEAL_INTERVAL_MS = 250;
/**
 * Where a topic first watched while Redis is unreachable starts on a Cluster (whose ids are the
 * shards' clocks, not ours): this far back, so that clock skew can only add older messages,
 * never skip one.
 */
const CLOCK_SKEW_MARGIN_MS = 10_000;

/** What this instance knows about one topic it has subscribers of (or the broadcast topic). */
interface TopicState {
  /** Newest position delivered here (or known to be current); recovery reads history after it. */
  readonly position: TopicPosition;
  /**
   * The position came from Redis (a message, a position read, a recovery), not from an estimate:
   * only then may a connection start from it while Redis cannot be asked.
   */
  confirmed: boolean;
}

/** A snapshot of a Redis broker's link and counters (for tests, benchmarks and health checks). */
export interface RedisBrokerStats {
  /** The link's state (see `redis-link.ts`). */
  readonly state: RedisLinkState;
  /** Random id of this broker, carried by its publications. */
  readonly instanceId: string;
  /** Pub/sub messages received from Redis. */
  readonly received: number;
  /** Of those, messages of topics without subscribers here (in flight while unsubscribing). */
  readonly receivedUnwatched: number;
  /** Messages handed to local subscribers (live or recovered). */
  readonly delivered: number;
  /** Messages that reached this instance twice (live and from history) and were dropped. */
  readonly duplicatesDropped: number;
  /** Publications waiting for Redis now. */
  readonly queued: number;
  /** Messages recovered from history after a reconnection. */
  readonly recovered: number;
  /** Topics whose local subscribers were told `pushlet:reset` after a reconnection. */
  readonly resets: number;
}

/**
 * The distributed broker: history in Redis Streams, live messages over Redis pub/sub, interest
 * routing, and an explicit link state machine (`redis-link.ts`) for outages.
 *
 * Delivery: every instance, the publishing one included, delivers a message to its own
 * subscribers when it comes back from Redis pub/sub, on the channel of its topic that the
 * instance subscribes to only while it has subscribers of the topic. One subscription per
 * instance and topic means one delivery per instance, in the order Redis ran the publishing
 * scripts, which is the order of the ids.
 *
 * Outages: publications wait in the outbox ({@link RedisOutbox}) until Redis has recorded them;
 * nothing is delivered that Redis has not ordered, so nothing arrives twice or out of order.
 * Live messages that come while the link recovers are held; recovery reads every watched topic's
 * history after the newest position delivered here, delivers it, then what was held
 * ({@link CatchUp}); topics whose history Redis lost get a `gap`.
 */
export class RedisBroker implements PushletBroker {
  readonly instanceId = randomBytes(8).toString('hex');
  readonly keys: RedisKeys;
  readonly ordering: 'total' | 'per-topic';
  private readonly address: string;
  private readonly connections: RedisConnections;
  private readonly history: RedisHistory;
  private readonly link: RedisLink;
  private readonly outbox: RedisOutbox;
  private handler: BrokerEventHandler | undefined;
  private readonly topics = new Map<string, TopicState>();
  /**
   * Publications delivered here lately, by origin and counter. The publish script records a
   * publication once even when it is sent again; this catches the one case it cannot: a copy sent
   * again to a Redis that lost the first one's record with its data.
   */
  private readonly recent: RecentPublications;
  /** Live messages held while the link is down or recovering. */
  private held: CatchUp<Received> | undefined;
  private recovering: Promise<void> | undefined;
  private flushScheduled = false;
  /** Resume reads and start positions of one event-loop turn, served together (reconnect storms). */
  private readonly reads = new PerTurn<readonly ReplayRequest[], TopicReplay[]>((readers) => this.history.readMany(readers));
  private readonly positionReads = new PerTurn<readonly string[], ParsedId[]>((lists) => this.history.positionsMany(lists));
  private healer: NodeJS.Timeout | undefined;
  /** Single server: the newest position seen from Redis (ids are global there). */
  private lastSeen: ParsedId = { ms: 0, seq: 0 };
  private everReady = false;
  private reportedStart = false;
  private outage: { recovered: number; resets: number } | undefined;
  // ioredis neither answers nor fails a command in flight when its connection closes (it drops or
  // resends it after reconnecting): these fail such commands at once instead.
  private readonly commandClosed = new ClosedSignal();
  private readonly subscriberClosed = new ClosedSignal();
  /** Told each time the link becomes `ready` after an outage (presence adds its members again). */
  private readonly readyListeners = new Set<() => void>();
  private readonly counts = { received: 0, receivedUnwatched: 0, delivered: 0, duplicatesDropped: 0, recovered: 0, resets: 0 };

  private readonly events: RedisLinkListener = {
    commandReady: () => this.heal(),
    commandLost: () => {
      this.commandClosed.trip();
      this.lost();
    },
    subscriberReady: () => this.heal(),
    subscriberLost: () => {
      this.subscriberClosed.trip();
      this.lost();
    },
    shardSubscriberLost: () => {
      this.logger.debug?.('a shard subscriber of Redis Cluster was lost');
      this.lost();
    },
    subscriptionsRestored: () => {
      this.logger.debug?.('Redis Cluster restored its shard subscribers');
      this.heal();
    },
    message: (channel, payload) => (channel === this.keys.control ? this.onControl(payload) : this.onMessage(payload)),
  };

  constructor(
    private readonly options: ResolvedRedisOptions,
    limits: RedisHistoryLimits,
    private readonly logger: LoggerService,
  ) {
    this.keys = new RedisKeys(options.keyPrefix);
    this.recent = new RecentPublications(Math.max(20_000, 2 * options.maxQueued));
    this.address = describeSource(options.source);
    this.connections = new RedisConnections(options, this.events);
    this.ordering = this.connections.cluster ? 'per-topic' : 'total';
    this.history = new RedisHistory(this.connections.command, this.keys, this.connections.cluster, limits);
    this.link = new RedisLink((state, previous) => this.entered(state, previous));
    this.outbox = new RedisOutbox(this.instanceId, options.maxQueued, {
      send: (messages) => this.history.appendAll(messages, (call) => this.onCommand(call, 'a publication')),
      unreachable: () => this.lost(),
    });
  }

  async start(handler: BrokerEventHandler): Promise<void> {
    this.handler = handler;
    this.topics.set(BROADCAST_TOPIC, { position: new TopicPosition(this.fallbackPosition()), confirmed: false });
    try {
      await withTimeout(this.connections.connect(), this.options.connectTimeoutMs, 'the connection');
      this.link.to('recovering');
      await this.recovering;
      if (this.link.state !== 'ready') throw new Error('the connection closed while starting');
    } catch (error) {
      const cause = reason(this.connections.lastError ?? error);
      if (!this.options.startWithoutRedis) {
        this.link.to('stopped');
        await this.connections.close(this.options.commandTimeoutMs);
        throw new PushletRedisUnavailableError(MESSAGES.redisUnavailable(this.address, cause));
      }
      this.logger.warn(`Redis at ${this.address} is unreachable (${cause}): starting without it; publications wait for it and are delivered once it has recorded them`);
      this.link.to('down');
    }
    this.healer = setInterval(() => this.heal(), HEAL_INTERVAL_MS);
    this.healer.unref();
  }

  /** Resolves once Redis has recorded the message (waiting in order while it is unreachable). */
  async publish(topic: string, event: string, data: string): Promise<Envelope> {
    const sent = this.outbox.publish(topic, event, data);
    this.flushSoon();
    const position = parseId(await sent);
    if (!position) throw new PushletRedisError(MESSAGES.redisPublishFailed('an unreadable id'));
    return Envelope.create(position, topic, event, data);
  }

  /**
   * Sends an instance-wide command on the control channel (classic pub/sub: every instance gets it
   * live, this one included; one cut off from Redis at that moment misses it).
   * @throws PushletRedisError when Redis is unreachable or does not answer in time.
   */
  async control(command: PushletControlCommand): Promise<void> {
    if (this.link.state === 'stopped') throw new PushletRedisError(MESSAGES.brokerStopped);
    await this.onCommand(this.connections.command.publish(this.keys.control, encodeControl(command)), 'a control command');
  }

  async watch(topic: string): Promise<void> {
    if (this.topics.has(topic)) return;
    const ready = this.link.state === 'ready';
    // Not ready: recovery subscribes it and reads what it missed after a safe start.
    const state: TopicState = { position: new TopicPosition(ready ? undefined : this.fallbackPosition()), confirmed: false };
    this.topics.set(topic, state);
    if (!ready) return;
    try {
      await this.onSubscriber(this.connections.subscribe([this.keys.channel(topic)]), 'a subscription');
      const [position] = await this.onCommand(this.history.positions([topic]), 'a position');
      if (position && (!state.position.last || compareIds(position, state.position.last) > 0)) state.position.last = position;
      state.confirmed = true;
    } catch {
      // Not subscribed for sure: recover (which subscribes again and reads what was missed).
      this.lost();
    }
  }

  unwatch(topic: string): void {
    if (topic === BROADCAST_TOPIC) return;
    this.topics.delete(topic);
    if (this.link.state === 'ready') this.connections.unsubscribe([this.keys.channel(topic)]).catch(() => undefined);
  }

  async replay(requests: readonly ReplayRequest[]): Promise<ReplayResult> {
    if (this.link.state !== 'ready') return this.replayWhileDown(requests);
    const replays = await this.onCommand(this.reads.call(requests), 'a history read');
    return {
      envelopes: inOrder(replays, this.ordering === 'total').map((received) => received.envelope),
      incomplete: replays.filter((r) => r.incomplete).map((r) => r.topic),
      unknown: replays.filter((r) => r.unknown).map((r) => r.topic),
    };
  }

  /**
   * Without Redis, history cannot be read; but a topic watched here will get, once the link
   * recovers, everything after the newest position delivered here: a request from there or later
   * is complete with nothing to replay yet. Anything older cannot be served now.
   */
  private replayWhileDown(requests: readonly ReplayRequest[]): ReplayResult {
    for (const { topic, after } of requests) {
      const state = this.topics.get(topic);
      const last = state?.position.last;
      if (!state || !last) throw new PushletRedisError(MESSAGES.redisNotConnected);
      if (compareIds(after, last) >= 0) continue;
      // An estimate may move back: recovery then reads from earlier, which only adds older messages.
      if (!state.confirmed) state.position.last = after;
      else throw new PushletRedisError(MESSAGES.redisNotConnected);
    }
    return { envelopes: [], incomplete: [], unknown: [] };
  }

  async positions(topics: readonly string[], estimate = false): Promise<ParsedId[]> {
    if (this.link.state === 'ready') {
      try {
        const positions = await this.onCommand(this.positionReads.call(topics), 'a position');
        for (const position of positions) this.noteSeen(position);
        return positions;
      } catch {
        // What this instance knows is still a safe start (see below).
      }
    }
    // Every message after the newest position delivered here will be delivered here: an exact
    // start, if that position came from Redis. Otherwise there is none to give now.
    return topics.map((topic) => {
      const state = this.topics.get(topic);
      if (state?.position.last && (state.confirmed || estimate)) return state.position.last;
      if (estimate) return this.fallbackPosition();
      throw new PushletRedisError(MESSAGES.redisNotConnected);
    });
  }

  async stop(): Promise<void> {
    if (!this.link.to('stopped')) return;
    if (this.healer) clearInterval(this.healer);
    if (this.outbox.size > 0) this.logger.warn(`${this.outbox.size} publications never reached Redis; their publish() calls fail`);
    this.outbox.rejectAll(new PushletRedisError(MESSAGES.redisStopped));
    try {
      await this.connections.close(this.options.commandTimeoutMs);
    } finally {
      this.handler = undefined;
      this.topics.clear();
      this.held = undefined;
    }
  }

  /**
   * Presence in this broker's Redis (single server or Cluster), shared by every instance on it;
   * its commands share the broker's command connection and timeout.
   */
  presenceStore(ttlMs: number): RedisPresenceStore {
    return new RedisPresenceStore(
      this.connections.command,
      this.keys,
      this.connections.cluster,
      ttlMs,
      (call, what) => this.onCommand(call, what),
      (listener) => {
        this.readyListeners.add(listener);
        return () => this.readyListeners.delete(listener);
      },
    );
  }

  stats(): RedisBrokerStats {
    return { state: this.link.state, instanceId: this.instanceId, queued: this.outbox.size, ...this.counts };
  }

  /** Connected only while the link is `ready`; `queued` is what the outbox holds for Redis. */
  status(): PushletBrokerStatus {
    const state = this.link.state;
    return { connected: state === 'ready', state, queued: this.outbox.size };
  }

  // ---- link state ------------------------------------------------------------------------

  private entered(state: RedisLinkState, previous: RedisLinkState): void {
    this.logger.debug?.(`Redis link ${previous} -> ${state}`);
    if (state === 'down') {
      this.held ??= new CatchUp();
      this.outbox.resend();
      if (previous === 'ready' && !this.outage) {
        this.outage = { recovered: 0, resets: 0 };
        this.logger.warn(`lost the connection to Redis at ${this.address}: publications wait until Redis has recorded them`);
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
   * Sends what the outbox holds once this event-loop turn's publications are all in (after I/O
   * callbacks and their promise chains): one script call carries them all (`PUBLISH_SCRIPT`).
   */
  private flushSoon(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      if (this.link.state === 'ready') this.outbox.flush();
    });
  }

  /** A connection was lost or a command found Redis unreachable. */
  private lost(): void {
    const state = this.link.state;
    if (state === 'ready' || state === 'recovering') this.link.to('down');
  }

  /** Tries to recover when the link is down and both connections answer again. */
  private heal(): void {
    if (this.link.state === 'down' && this.connections.commandReady && this.connections.subscriberReady) this.link.to('recovering');
  }

  /**
   * Scripts, subscriptions, then every watched topic's history after the newest position
   * delivered here: what is new is delivered, then the live messages held meanwhile; topics whose
   * history was lost get a gap. Any failure sends the link down again (and healing retries).
   */
  private async recover(): Promise<void> {
    const epoch = this.link.epoch;
    const current = () => this.link.epoch === epoch;
    let step = 'start';
    try {
      step = 'epoch';
      if (!this.connections.cluster) await this.checkEpoch();
      step = 'scripts';
      // After a restart Redis has no scripts cached: load them before anything runs them.
      await this.onCommand(this.history.loadScripts(), 'SCRIPT LOAD');
      // Topics watched while this runs are not in the subscriptions already sent: each round
      // subscribes and reads those that came meanwhile (few, so the rounds end), holding live
      // messages as the first round does, until none is left out.
      step = 'subscribe';
      await this.onSubscriber(this.connections.subscribeControl(this.keys.control), 'the control channel');
      const subscribed = new Set<string>();
      for (let round = 1; ; round++) {
        const topics = [...this.topics.keys()].filter((topic) => !subscribed.has(topic));
        if (topics.length === 0) break;
        if (round > MAX_RECOVERY_ROUNDS) throw new Error(`topics kept arriving for ${MAX_RECOVERY_ROUNDS} rounds`);
        this.held ??= new CatchUp();
        step = 'subscribe';
        for (const topic of topics) subscribed.add(topic);
        await this.onSubscriber(this.connections.subscribe(topics.map((topic) => this.keys.channel(topic))), 'the subscriptions');
        step = 'read';
        const requests = topics.filter((topic) => this.topics.has(topic)).map((topic) => {
          const state = this.topics.get(topic)!;
          state.position.last ??= this.fallbackPosition();
          return { topic, after: state.position.last };
        });
        const replays = await this.onCommand(this.reads.call(requests), 'a history read');
        if (!current()) return;
        await this.deliverRecovered(replays);
        if (!current()) return;
      }
      this.everReady = true;
      this.link.to('ready');
    } catch (error) {
      this.logger.debug?.(`recovery from Redis failed at ${step}: ${reason(error)}`);
      if (current() && this.link.state === 'recovering') this.link.to('down');
    }
  }

  /** Single server: a restart or data loss moves the history horizon (see `EPOCH_SCRIPT`). */
  private async checkEpoch(): Promise<void> {
    const runIds = await this.onCommand(this.connections.runIds(), 'INFO');
    await this.onCommand(this.history.checkEpoch(runIds), 'the run marker check');
  }

  private async deliverRecovered(replays: readonly TopicReplay[]): Promise<void> {
    for (const replay of replays) {
      // The first recovery starts from estimated positions, and a new Redis has no history yet:
      // only a topic this instance has followed through Redis can have lost something.
      if (!(replay.incomplete || replay.unknown) || !this.topics.has(replay.topic) || !this.everReady) continue;
      this.counts.resets += 1;
      if (this.outage) this.outage.resets += 1;
      this.handler?.gap(replay.topic, replay.floor);
    }
    const held = this.held ?? new CatchUp<Received>();
    this.held = undefined;
    const recovered = inOrder(replays, this.ordering === 'total');
    let fromHistory = recovered.length;
    await held.finish(recovered, (received) => {
      const delivered = this.accept(received);
      if (fromHistory > 0) {
        fromHistory -= 1;
        if (delivered) {
          this.counts.recovered += 1;
          if (this.outage) this.outage.recovered += 1;
        }
      }
    });
    // Everything up to the read is delivered or announced lost: start from there next time.
    for (const replay of replays) {
      const state = this.topics.get(replay.topic);
      if (!state) continue;
      if (!state.position.last || compareIds(state.position.last, replay.readAt) < 0) state.position.last = replay.readAt;
      state.confirmed = true;
    }
  }

  // ---- receiving -------------------------------------------------------------------------

  /** An instance-wide command from the control channel: checked, never trusted; a bad one is logged and ignored. */
  private onControl(payload: string): void {
    const command = parseControl(payload);
    if (!command) {
      this.logger.warn(`ignored a malformed message of ${payload.length} characters on the control channel ${this.keys.control}`);
      return;
    }
    this.handler?.control?.(command);
  }

  private onMessage(payload: string): void {
    for (const received of receivePublications(payload)) {
      this.counts.received += 1;
      if (this.held?.hold(received)) {
        if (this.held.heldCount > this.options.maxQueued) this.overflowHeld();
        continue;
      }
      this.accept(received);
    }
  }

  /**
   * History stays unreadable while live messages pile up: stop holding them, and tell every
   * subscriber that messages may be missing.
   */
  private overflowHeld(): void {
    const held = this.held?.abandon() ?? [];
    this.held = new CatchUp();
    for (const topic of this.topics.keys()) this.handler?.gap(topic);
    for (const received of held) this.accept(received);
    // Positions moved past what recovery would have read: it reads from there.
  }

  /** Delivers a message from Redis unless this instance has delivered it already. */
  private accept({ envelope, origin, counter }: Received): boolean {
    const state = this.topics.get(envelope.topic);
    if (!state) {
      this.counts.receivedUnwatched += 1;
      return false;
    }
    if (!state.position.advance(envelope.position) || !this.recent.add(origin, counter, envelope.id)) {
      this.counts.duplicatesDropped += 1;
      return false;
    }
    this.noteSeen(envelope.position);
    state.confirmed = true;
    this.counts.delivered += 1;
    this.handler?.message(envelope);
    return true;
  }

  // ---- helpers ---------------------------------------------------------------------------

  /** A command's answer, or a failure once it times out or its connection closes. */
  private onCommand<T>(command: Promise<T>, what: string): Promise<T> {
    return this.commandClosed.race(withTimeout(command, this.options.commandTimeoutMs, what));
  }

  private onSubscriber<T>(command: Promise<T>, what: string): Promise<T> {
    return this.subscriberClosed.race(withTimeout(command, this.options.commandTimeoutMs, what));
  }

  /** Single server: notes a position from Redis (ids are global there). */
  private noteSeen(position: ParsedId): void {
    if (this.ordering === 'total' && compareIds(position, this.lastSeen) > 0) this.lastSeen = position;
  }

  /**
   * A start for a topic this instance has no position of, while Redis cannot be asked: the newest
   * id seen on a single server; on a Cluster the local clock less a margin for skew. Either is
   * at or before every message not yet delivered here, so it can only add older messages.
   */
  private fallbackPosition(): ParsedId {
    if (this.ordering === 'total' && this.lastSeen.ms > 0) return this.lastSeen;
    return { ms: Date.now() - CLOCK_SKEW_MARGIN_MS, seq: 0 };
  }

  private reportBack(): void {
    const outage = this.outage;
    if (!outage) {
      if (this.everReady && !this.reportedStart) {
        this.reportedStart = true;
        this.logger.log(`distributed mode on Redis at ${this.address} (instance ${this.instanceId})`);
      }
      return;
    }
    this.outage = undefined;
    const resets = outage.resets > 0 ? `; history was lost, ${outage.resets} topics told pushlet:reset` : '';
    this.logger.log(`connected to Redis at ${this.address} again: recovered ${outage.recovered} messages from history${resets}`);
  }

}

function reason(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return reason(error.errors[0]);
  return error instanceof Error ? error.message : String(error);
}

/** Fails whatever races it when a connection closes; then arms itself again for the next one. */
class ClosedSignal {
  private reject: ((error: Error) => void) | undefined;
  private closed = this.arm();

  race<T>(promise: Promise<T>): Promise<T> {
    return Promise.race([promise, this.closed]);
  }

  trip(): void {
    this.reject?.(new Error('the Redis connection closed'));
    this.closed = this.arm();
  }

  private arm(): Promise<never> {
    const closed = new Promise<never>((_, reject) => (this.reject = reject));
    closed.catch(() => undefined);
    return closed;
  }
}
