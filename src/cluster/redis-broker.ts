import { randomBytes } from 'node:crypto';
import type { LoggerService } from '@nestjs/common';
import { Envelope } from '../core/envelope.js';
import { compareIds, formatId, parseId, type ParsedId } from '../core/message-id.js';
import { BROADCAST_TOPIC } from '../core/topic.js';
import type { PushletBroker, ReplayResult } from '../interfaces/broker.interface.js';
import { MESSAGES } from '../pushlet.messages.js';
import { isProvisional, PROVISIONAL_SEQ_BASE, receivePublication, type Received } from './redis-codec.js';
import { RedisConnections, type RedisLinkListener } from './redis-connections.js';
import { RecentPublications } from './redis-dedupe.js';
import { isTransient, PushletRedisError, PushletRedisUnavailableError, withTimeout } from './redis-errors.js';
import { RedisHistory, type RedisHistoryLimits, type TopicReplay } from './redis-history.js';
import { RedisKeys } from './redis-keys.js';
import { describeSource, type ResolvedRedisOptions } from './redis-options.js';

/** How often a broker cut off from Redis checks whether it can reconnect its state. */
const HEAL_INTERVAL_MS = 250;
/** History reads tried after a reconnection before subscribers are told `pushlet:reset` instead. */
const MAX_RECOVERY_ATTEMPTS = 4;

/** What this instance knows about one topic it has subscribers of (or the broadcast topic). */
interface TopicState {
  /** Newest position delivered here from Redis; recovery reads history after it. */
  last: ParsedId | undefined;
  /** Where recovery reads from while nothing has been delivered yet. */
  since: ParsedId;
}

/** A publication waiting for Redis. */
interface Pending {
  readonly topic: string;
  readonly event: string;
  readonly data: string;
  readonly counter: number;
}

/** A snapshot of a Redis broker's link and counters (for tests, benchmarks and health checks). */
export interface RedisBrokerStats {
  /** `connected`: commands and subscriptions both work; `disconnected`: local-only for now. */
  readonly state: 'starting' | 'connected' | 'disconnected' | 'stopped';
  /** Random id of this broker, carried by its publications. */
  readonly instanceId: string;
  /** Pub/sub messages received from Redis. */
  readonly received: number;
  /** Of those, messages of topics without subscribers here (in flight while unsubscribing). */
  readonly receivedUnwatched: number;
  /** Messages handed to local subscribers (from Redis, recovered, or provisional). */
  readonly delivered: number;
  /** Publications that reached this instance twice and were dropped. */
  readonly duplicatesDropped: number;
  /** Publications delivered locally while Redis was unreachable. */
  readonly provisional: number;
  /** Publications waiting for Redis now. */
  readonly queued: number;
  /** Messages recovered from history after a reconnection. */
  readonly recovered: number;
  /** Topics whose local subscribers were told `pushlet:reset` after a reconnection. */
  readonly resets: number;
}

/**
 * The distributed broker: history in Redis Streams, live messages over Redis pub/sub, interest
 * routing, and graceful degradation while Redis is unreachable.
 *
 * Delivery: every instance, the publishing one included, delivers a message to its own
 * subscribers when the message comes back from Redis pub/sub, on the channel of its topic that
 * the instance subscribes to only while it has subscribers of the topic. One subscription per
 * instance and topic means one delivery per instance: exactly once, and in the order Redis ran
 * the publishing scripts, which is the order of the ids.
 *
 * While Redis is unreachable a publication is delivered at once to this instance's subscribers
 * (with a provisional id) and queued; it goes to Redis when it is back, and comes back from
 * there as a duplicate that the origin/counter check drops. Messages others published meanwhile
 * are recovered from history after resubscribing, or announced with `pushlet:reset` if Redis
 * lost them.
 */
export class RedisBroker implements PushletBroker {
  readonly instanceId = randomBytes(8).toString('hex');
  readonly keys: RedisKeys;
  private readonly address: string;
  private connections: RedisConnections | undefined;
  private history: RedisHistory | undefined;
  private deliver: ((envelope: Envelope) => void) | undefined;
  private readonly topics = new Map<string, TopicState>();
  private queue: Pending[] = [];
  /** Publications settle (deliver locally, queue) in the order they were made. */
  private settled: Promise<unknown> = Promise.resolve();
  private counter = 0;
  /** Publications sent and not yet settled: bring-up lets them settle before sending the queue. */
  private sending = 0;
  /** This instance's publications that Redis accepted and that have not come back yet. */
  private readonly unechoed = new Map<number, Envelope>();
  /** Publications delivered here lately: a second copy of one is dropped. */
  private readonly recent: RecentPublications;
  private provisionalSeq = 0;
  /**
   * The newest position known to be at or before every message Redis has yet to hand out: the
   * newest id seen (single server only: in a cluster, ids of different shards do not compare)
   * and the newest position read from Redis's clock.
   */
  private lastSeen: ParsedId = { ms: Date.now(), seq: 0 };
  private commandUp = false;
  private subscriberUp = false;
  private everConnected = false;
  private everSubscribed = false;
  private shardLost = false;
  private needsRecovery = false;
  private recovering = false;
  private recoveryFailures = 0;
  /** Live messages held back while history is being recovered. */
  private held: Received[] | undefined;
  private bringingUp: Promise<void> | undefined;
  private subscribing: Promise<void> | undefined;
  private healer: NodeJS.Timeout | undefined;
  private stopped = false;
  private outage: { flushed: number; recovered: number; resets: number; dropped: number } | undefined;
  // ioredis neither answers nor fails a command in flight when its connection closes (it drops or
  // resends it after reconnecting): these fail such commands at once instead.
  private readonly commandClosed = new ClosedSignal();
  private readonly subscriberClosed = new ClosedSignal();
  private readonly counts = { received: 0, receivedUnwatched: 0, delivered: 0, duplicatesDropped: 0, provisional: 0, recovered: 0, resets: 0 };

  private readonly link: RedisLinkListener = {
    commandReady: () => void this.bringCommandUp(),
    commandLost: () => {
      this.commandClosed.trip();
      this.commandDown();
    },
    subscriberReady: () => void this.bringSubscriberUp(),
    subscriberLost: () => {
      this.subscriberClosed.trip();
      this.subscriberDown();
    },
    shardSubscriberLost: () => {
      this.shardLost = true;
    },
    subscriptionsRestored: () => {
      if (!this.shardLost) return;
      this.shardLost = false;
      this.needsRecovery = true;
      void this.recoverIfReady();
    },
    message: (_channel, payload) => this.onMessage(payload),
  };

  constructor(
    private readonly options: ResolvedRedisOptions,
    private readonly limits: RedisHistoryLimits,
    private readonly logger: LoggerService,
  ) {
    this.keys = new RedisKeys(options.keyPrefix);
    this.recent = new RecentPublications(Math.max(20_000, 2 * options.maxQueued));
    this.address = describeSource(options.source);
  }

  async start(deliver: (envelope: Envelope) => void): Promise<void> {
    this.deliver = deliver;
    this.topics.set(BROADCAST_TOPIC, this.newTopicState());
    const connections = new RedisConnections(this.options, this.link);
    this.connections = connections;
    this.history = new RedisHistory(connections.command, this.keys, connections.cluster, this.limits);
    try {
      await withTimeout(connections.connect(), this.options.connectTimeoutMs, 'the connection');
      await this.bringCommandUp(true);
      await this.bringSubscriberUp(true);
      if (!this.commandUp || !this.subscriberUp) throw new Error('the connection closed while starting');
    } catch (error) {
      const cause = reason(connections.lastError ?? error);
      if (!this.options.startWithoutRedis) {
        this.stopped = true;
        await connections.close(this.options.commandTimeoutMs);
        throw new PushletRedisUnavailableError(MESSAGES.redisUnavailable(this.address, cause));
      }
      this.logger.warn(`Redis at ${this.address} is unreachable (${cause}): starting local-only; joining the other instances as soon as it answers`);
      this.outage = { flushed: 0, recovered: 0, resets: 0, dropped: 0 };
      // Whatever other instances publish until then is read from history on joining.
      this.needsRecovery = true;
    }
    this.healer = setInterval(() => this.heal(), HEAL_INTERVAL_MS);
    this.healer.unref();
  }

  async publish(topic: string, event: string, data: string): Promise<Envelope> {
    const pending: Pending = { topic, event, data, counter: ++this.counter };
    const history = this.history;
    if (this.commandUp && history) {
      // Sent now (in publication order on the one connection), settled in the same order.
      this.sending += 1;
      const attempt = this.attempt(history, pending, 'a publication');
      return this.inOrder(async () => {
        try {
          const position = parseId(await attempt)!;
          this.noteSeen(position);
          const envelope = Envelope.create(position, topic, event, data);
          this.awaitEcho(pending.counter, envelope);
          return envelope;
        } catch (error) {
          if (!isTransient(error)) throw new PushletRedisError(MESSAGES.redisPublishFailed(reason(error)));
          // Unknown whether Redis ran it: deliver and queue it; a second copy is dropped on arrival.
          this.commandDown();
          this.enqueue(pending);
          return this.deliverProvisionally(pending);
        } finally {
          this.sending -= 1;
        }
      });
    }
    this.enqueue(pending);
    return this.inOrder(async () => this.deliverProvisionally(pending));
  }

  async watch(topic: string): Promise<void> {
    if (!this.topics.has(topic)) this.topics.set(topic, this.newTopicState());
    if (!this.subscriberUp || !this.connections) return;
    try {
      await this.onSubscriber(this.connections.subscribe([this.keys.channel(topic)]), 'a subscription');
    } catch {
      // Not subscribed for sure: subscribe again and recover the topic's history once Redis answers.
      this.needsRecovery = true;
    }
  }

  unwatch(topic: string): void {
    if (topic === BROADCAST_TOPIC) return;
    this.topics.delete(topic);
    if (this.subscriberUp) this.connections?.unsubscribe([this.keys.channel(topic)]).catch(() => undefined);
  }

  async replay(topics: readonly string[], afterId: string): Promise<ReplayResult> {
    const after = parseId(afterId);
    if (!after) return { envelopes: [], reset: true };
    if (!this.commandUp || !this.history) throw new PushletRedisError(MESSAGES.redisNotConnected);
    // A provisional id is unknown to the shared history: replay from its millisecond, and say so.
    const provisional = isProvisional(after);
    const from = provisional ? { ms: after.ms, seq: 0 } : after;
    const replays = await this.onCommand(
      this.history.read(topics.map((topic) => ({ topic, after: from }))),
      'a history read',
    );
    const envelopes = mergeInOrder(replays).map((received) => received.envelope);
    return { envelopes, reset: provisional || replays.some((r) => r.reset) };
  }

  async position(): Promise<string> {
    if (this.commandUp && this.history) {
      try {
        this.noteClock(await this.onCommand(this.history.position(), 'a position'));
      } catch {
        // The newest id seen is still at or before every message Redis will hand out.
      }
    }
    return formatId(this.lastSeen.ms, this.lastSeen.seq);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.healer) clearInterval(this.healer);
    if (this.queue.length > 0) {
      this.logger.warn(`${this.queue.length} messages published while Redis was unreachable never reached it (delivered on this instance only)`);
    }
    try {
      await this.connections?.close(this.options.commandTimeoutMs);
    } finally {
      this.deliver = undefined;
      this.topics.clear();
      this.held = undefined;
    }
  }

  stats(): RedisBrokerStats {
    const state = this.stopped ? 'stopped' : this.commandUp && this.subscriberUp ? 'connected' : this.everConnected || this.outage ? 'disconnected' : 'starting';
    return { state, instanceId: this.instanceId, queued: this.queue.length, ...this.counts };
  }

  // ---- publishing ------------------------------------------------------------------------

  private wire(pending: Pending) {
    return { topic: pending.topic, event: pending.event, data: pending.data, origin: this.instanceId, counter: pending.counter };
  }

  /**
   * Sends a publication now. Its outcome is awaited later, in publication order; until then a
   * failure must not count as an unhandled rejection.
   */
  private attempt(history: RedisHistory, pending: Pending, what: string): Promise<string> {
    const attempt = this.onCommand(history.append(this.wire(pending)), what);
    attempt.catch(() => undefined);
    return attempt;
  }

  private inOrder<T>(settle: () => Promise<T>): Promise<T> {
    const result = this.settled.then(settle);
    this.settled = result.catch(() => undefined);
    return result;
  }

  /** Delivers a queued publication to this instance's subscribers now, with a provisional id. */
  private deliverProvisionally(pending: Pending): Envelope {
    this.provisionalSeq += 1;
    const position = { ms: Math.max(Date.now(), this.lastSeen.ms), seq: PROVISIONAL_SEQ_BASE + this.provisionalSeq };
    const envelope = Envelope.create(position, pending.topic, pending.event, pending.data, 'provisional');
    this.deliverOwn(pending.counter, envelope);
    return envelope;
  }

  /** Delivers one of this instance's publications locally unless it was delivered already. */
  private deliverOwn(counter: number, envelope: Envelope): void {
    const state = this.topics.get(envelope.topic);
    if (!state || !this.recent.add(this.instanceId, counter)) return;
    this.counts.provisional += 1;
    this.counts.delivered += 1;
    this.deliver?.(envelope);
  }

  /**
   * Redis accepted a publication of a topic watched here: it is delivered here when it comes back
   * over pub/sub. Should the link fail first (Redis may die between answering and publishing),
   * it is delivered locally instead, under its real id but without moving resume positions.
   */
  private awaitEcho(counter: number, envelope: Envelope): void {
    const state = this.topics.get(envelope.topic);
    if (!state) return;
    if (this.recent.has(this.instanceId, counter)) return;
    const own = Envelope.create(envelope.position, envelope.topic, envelope.message.event, envelope.message.data, 'provisional');
    if (this.subscriberUp && this.commandUp) this.unechoed.set(counter, own);
    else this.deliverOwn(counter, own);
  }

  private deliverUnechoed(): void {
    const waiting = [...this.unechoed].sort(([a], [b]) => a - b);
    this.unechoed.clear();
    for (const [counter, envelope] of waiting) this.deliverOwn(counter, envelope);
  }

  private enqueue(pending: Pending): void {
    this.queue.push(pending);
    if (this.queue.length > this.options.maxQueued) {
      this.queue.shift();
      if (this.outage) {
        if (this.outage.dropped === 0) this.logger.warn(`more than ${this.options.maxQueued} publications waiting for Redis: dropping the oldest (they were delivered on this instance only)`);
        this.outage.dropped += 1;
      }
    }
  }

  /** Sends what was published while Redis was unreachable, in publication order. */
  private flushQueue(): void {
    const history = this.history;
    if (!history || this.queue.length === 0) return;
    const items = this.queue.sort((a, b) => a.counter - b.counter);
    this.queue = [];
    if (this.outage) this.outage.flushed += items.length;
    for (const item of items) {
      this.sending += 1;
      const attempt = this.attempt(history, item, 'a queued publication');
      void this.inOrder(async () => {
        try {
          this.noteSeen(parseId(await attempt)!);
        } catch (error) {
          if (!isTransient(error)) {
            this.logger.warn(`Redis refused a queued publication on "${item.topic}": ${reason(error)}`);
            return;
          }
          this.queue.push(item);
          this.commandDown();
        } finally {
          this.sending -= 1;
        }
      });
    }
  }

  // ---- receiving -------------------------------------------------------------------------

  private onMessage(payload: string): void {
    this.counts.received += 1;
    const received = receivePublication(payload);
    if (!received) return;
    if (!this.held) {
      this.accept(received);
      return;
    }
    this.held.push(received);
    if (this.held.length > this.options.maxQueued) this.abandonRecovery();
  }

  /**
   * History stays unreadable while live messages pile up: stop holding them back, and tell every
   * subscriber that messages may be missing.
   */
  private abandonRecovery(): void {
    this.needsRecovery = false;
    this.recoveryFailures = 0;
    this.announceLost([...this.topics.keys()]);
    const held = this.held ?? [];
    this.held = undefined;
    for (const received of held) this.accept(received);
  }

  private announceLost(topics: readonly string[]): void {
    for (const topic of topics) {
      if (!this.topics.has(topic)) continue;
      this.counts.resets += 1;
      if (this.outage) this.outage.resets += 1;
      this.deliver?.(Envelope.resetNotice(topic, this.lastSeen));
    }
  }

  /** Delivers a message from Redis unless this instance has already delivered it. */
  private accept({ envelope, origin, counter }: Received): boolean {
    if (origin === this.instanceId) this.unechoed.delete(counter);
    const state = this.topics.get(envelope.topic);
    if (!state) {
      this.counts.receivedUnwatched += 1;
      return false;
    }
    if (state.last && compareIds(envelope.position, state.last) <= 0) return false;
    state.last = envelope.position;
    this.noteSeen(envelope.position);
    if (!this.recent.add(origin, counter)) {
      this.counts.duplicatesDropped += 1;
      return false;
    }
    this.counts.delivered += 1;
    this.deliver?.(envelope);
    return true;
  }

  // ---- link state ------------------------------------------------------------------------

  /** Command connection ready: check the run marker, then send the queue. Serialised. */
  private bringCommandUp(throwOnFailure = false): Promise<void> {
    const running = (this.bringingUp ??= this.commandUpOnce().finally(() => (this.bringingUp = undefined)));
    return throwOnFailure ? running : running.catch(() => undefined);
  }

  private async commandUpOnce(): Promise<void> {
    const connections = this.connections;
    const history = this.history;
    if (this.stopped || this.commandUp || !connections?.commandReady || !history) return;
    const runIds = await this.onCommand(connections.runIds(), 'INFO');
    const epoch = await this.onCommand(history.checkEpoch(runIds), 'the run marker check');
    const position = await this.onCommand(history.position(), 'a position');
    // After a restart Redis has no scripts cached: load them first, or the NOSCRIPT fallback of
    // the first publications would let later ones overtake them.
    await this.onCommand(history.loadScripts(), 'SCRIPT LOAD');
    // Publications sent before the link failed settle first (answered, or queued in order).
    for (let rounds = 0; this.sending > 0 && rounds < 100; rounds += 1) await this.settled;
    if (this.stopped || this.commandUp) return;
    if (!this.everConnected) this.adoptStartPosition(position);
    else this.noteClock(position);
    if (epoch.state !== 'same' && this.everConnected) this.needsRecovery = true;
    this.commandUp = true;
    if (!this.everConnected && !this.outage) this.logger.log(`distributed mode on Redis at ${this.address} (instance ${this.instanceId})`);
    this.everConnected = true;
    this.flushQueue();
    await this.recoverIfReady();
    this.reportBack();
  }

  /** Subscriber connection ready: subscribe, then recover what was missed meanwhile. Serialised. */
  private bringSubscriberUp(throwOnFailure = false): Promise<void> {
    const running = (this.subscribing ??= this.subscriberUpOnce().finally(() => (this.subscribing = undefined)));
    return throwOnFailure ? running : running.catch(() => undefined);
  }

  private async subscriberUpOnce(): Promise<void> {
    const connections = this.connections;
    if (this.stopped || this.subscriberUp || !connections?.subscriberReady) return;
    if (this.everSubscribed) {
      // Messages flow as soon as the channels are subscribed: hold them until history is read.
      this.needsRecovery = true;
      this.held ??= [];
    }
    // A fresh connection holds no subscriptions: take the broadcast channel and every watched topic.
    await this.onSubscriber(connections.subscribe(this.wantedChannels()), 'the subscriptions');
    if (this.stopped) return;
    this.subscriberUp = true;
    this.everSubscribed = true;
    await this.recoverIfReady();
    this.reportBack();
  }

  private commandDown(): void {
    if (!this.commandUp) return;
    this.commandUp = false;
    this.deliverUnechoed();
    this.reportLost();
  }

  private subscriberDown(): void {
    if (!this.subscriberUp) return;
    this.subscriberUp = false;
    this.deliverUnechoed();
    this.needsRecovery = true;
    this.reportLost();
  }

  private heal(): void {
    if (this.stopped || !this.connections) return;
    if (!this.commandUp && this.connections.commandReady) void this.bringCommandUp();
    if (!this.subscriberUp && this.connections.subscriberReady) void this.bringSubscriberUp();
    if (this.needsRecovery) void this.recoverIfReady();
  }

  /**
   * After a reconnection: resubscribe, then read each watched topic's history after the newest
   * position delivered here, deliver what is new (the usual checks drop what is not), then the
   * live messages held meanwhile. Topics whose history was lost get a reset notice instead.
   */
  private async recoverIfReady(): Promise<void> {
    const connections = this.connections;
    const history = this.history;
    if (!this.needsRecovery || this.recovering || !this.commandUp || !this.subscriberUp || this.stopped || !connections || !history) return;
    this.needsRecovery = false;
    this.recovering = true;
    this.held ??= [];
    const requests = [...this.topics].map(([topic, state]) => ({ topic, after: state.last ?? state.since }));
    let replays: TopicReplay[];
    try {
      // Subscribing again is harmless and repairs a subscription that failed or timed out.
      await this.onSubscriber(connections.subscribe(this.wantedChannels()), 'the subscriptions');
      replays = await this.onCommand(history.read(requests), 'a history read');
    } catch {
      this.recovering = false;
      if (this.stopped) return;
      // Keep holding live messages and try again shortly; after a few failures, give up loudly.
      this.recoveryFailures += 1;
      if (this.recoveryFailures < MAX_RECOVERY_ATTEMPTS) this.needsRecovery = true;
      else this.abandonRecovery();
      return;
    }
    this.recoveryFailures = 0;
    if (this.stopped) return;
    this.announceLost(replays.filter((r) => r.reset).map((r) => r.topic));
    for (const received of mergeInOrder(replays)) {
      if (this.accept(received)) {
        this.counts.recovered += 1;
        if (this.outage) this.outage.recovered += 1;
      }
    }
    // Everything up to the read is delivered or announced lost: start from there next time.
    for (const replay of replays) {
      const state = this.topics.get(replay.topic);
      if (state && (!state.last || compareIds(state.last, replay.readAt) < 0)) state.last = replay.readAt;
    }
    const held = this.held ?? [];
    this.held = undefined;
    for (const received of held) this.accept(received);
    this.recovering = false;
    if (this.needsRecovery) void this.recoverIfReady();
  }


  /** A command's answer, or a failure once it times out or its connection closes. */
  private onCommand<T>(command: Promise<T>, what: string): Promise<T> {
    return this.commandClosed.race(withTimeout(command, this.options.commandTimeoutMs, what));
  }

  private onSubscriber<T>(command: Promise<T>, what: string): Promise<T> {
    return this.subscriberClosed.race(withTimeout(command, this.options.commandTimeoutMs, what));
  }

  private wantedChannels(): string[] {
    return [...this.topics.keys()].map((topic) => this.keys.channel(topic));
  }

  private newTopicState(): TopicState {
    return { last: undefined, since: this.lastSeen };
  }

  /** First contact with Redis: positions so far came from the local clock; prefer Redis's. */
  private adoptStartPosition(position: ParsedId): void {
    this.lastSeen = position;
    for (const state of this.topics.values()) {
      if (!state.last && compareIds(position, state.since) < 0) state.since = position;
    }
  }

  /** Notes the id of a message from Redis. */
  private noteSeen(position: ParsedId): void {
    if (!this.connections?.cluster) this.noteClock(position);
  }

  /** Notes a position read from Redis's clock. */
  private noteClock(position: ParsedId): void {
    if (compareIds(position, this.lastSeen) > 0) this.lastSeen = position;
  }

  private reportLost(): void {
    if (this.outage || this.stopped || !this.everConnected) return;
    this.outage = { flushed: 0, recovered: 0, resets: 0, dropped: 0 };
    this.logger.warn(`lost the connection to Redis at ${this.address}: publishing locally and queueing for Redis until it is back`);
  }

  private reportBack(): void {
    const outage = this.outage;
    if (!outage || !this.commandUp || !this.subscriberUp || this.recovering || this.needsRecovery || this.stopped) return;
    this.outage = undefined;
    const resets = outage.resets > 0 ? `; history was lost, ${outage.resets} topics told pushlet:reset` : '';
    const dropped = outage.dropped > 0 ? `; ${outage.dropped} dropped from a full queue` : '';
    this.logger.log(
      `connected to Redis at ${this.address}: sent ${outage.flushed} queued messages, recovered ${outage.recovered} from history${resets}${dropped}`,
    );
  }
}

/** Every topic's messages in id order (on one server a total order; in a cluster, per shard). */
function mergeInOrder(replays: readonly TopicReplay[]): Received[] {
  const all = replays.flatMap((r) => r.received);
  if (replays.length > 1) all.sort((a, b) => compareIds(a.envelope.position, b.envelope.position));
  return all;
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
