import type {
  BrokerEvents,
  BrokerPatterns,
  BrokerPublication,
  BrokerRecord,
  PushletBroker,
  PushletControlCommand,
  TailRequest,
  TopicRead,
} from '../interfaces/broker.interface.js';
import { encodeControl, parseControl } from '../core/control.js';
import { parsePosition, type Position } from '../protocol/ids.js';
import type { LoggerService } from '@nestjs/common';
import { MESSAGES } from '../pushlet.messages.js';
import { receivePublications } from './redis-codec.js';
import { RedisConnections, type RedisLinkListener } from './redis-connections.js';
import { isTransient, PushletRedisError, PushletRedisUnavailableError, withTimeout } from './redis-errors.js';
import { RedisHistory, type RedisHistoryLimits } from './redis-history.js';
import { RedisKeys } from './redis-keys.js';
import { RedisPresenceStore } from './redis-presence.js';
import { describeSource, ioredisOptions, type ResolvedIoredisOptions } from './redis-client.js';
import type { ResolvedRedisOptions } from './redis-options.js';

/**
 * Most pub/sub globs one instance holds for pattern subscriptions; past it, one catch-all glob
 * (see `RedisBroker.globsWanted`). Every glob any client holds costs Redis about 0.02 µs per
 * publication (measured with a bare PUBLISH pipeline: 0.5 µs each with none, 1.05 with 32 globs,
 * 11.4 with 512, 43 with 2,048), against 10 to 15 µs for a publication with history: 32 per
 * instance is a few per cent of it, while an instance taking every message it does not need
 * through the catch-all glob pays more than that in CPU of its own.
 */
const MAX_GLOBS = 32;

/**
 * The distributed broker: history in Redis Streams, live messages over Redis pub/sub (sharded on
 * a Cluster), interest routing, batched publishing through one script call per turn (per slot on
 * a Cluster). An adapter: it appends, reads, routes and reports its connections; what an instance
 * does through a lost link (held messages, recovery rounds, positions, resets) is the recovery
 * core's (`core/recovery-core.ts`), as for every broker.
 *
 * Every instance, the publishing one included, receives a message when it comes back from Redis
 * pub/sub, on the channel of its topic, which it subscribes to only while it has subscribers of
 * the topic: one delivery per instance, in the order Redis ran the publishing scripts.
 */
export class RedisBroker implements PushletBroker {
  readonly keys: RedisKeys;
  readonly ordering: 'total' | 'per-topic';
  readonly description: string;
  readonly maxQueued: number;
  readonly startWithoutBackend: boolean;
  readonly batching = true;
  private readonly options: ResolvedIoredisOptions;
  private readonly connections: RedisConnections;
  private readonly history: RedisHistory;
  private events: BrokerEvents | undefined;
  private stopped = false;
  // ioredis neither answers nor fails a command in flight when its connection closes (it drops or
  // resends it after reconnecting): these fail such commands at once instead.
  private readonly commandClosed = new ClosedSignal();
  private readonly subscriberClosed = new ClosedSignal();
  /** Single server: pattern subscriptions, routed by one glob per first segment (sharded pub/sub on a Cluster has no patterns). */
  readonly patterns?: BrokerPatterns;
  private readonly watchedPatterns = new Set<string>();
  /** Each glob the watched patterns route by, with how many of them use it. */
  private readonly globUses = new Map<string, number>();
  /** Globs subscribed or being subscribed on the subscriber connection (forgotten when it is lost). */
  private readonly heldGlobs = new Map<string, Promise<void>>();

  private readonly listener: RedisLinkListener = {
    commandReady: () => this.events?.up(),
    commandLost: () => {
      this.commandClosed.trip();
      this.events?.down();
    },
    subscriberReady: () => this.events?.up(),
    subscriberLost: () => {
      this.heldGlobs.clear();
      this.subscriberClosed.trip();
      this.events?.down();
    },
    shardSubscriberLost: () => {
      this.logger.debug?.('a shard subscriber of Redis Cluster was lost');
      this.events?.down();
    },
    subscriptionsRestored: () => {
      this.logger.debug?.('Redis Cluster restored its shard subscribers');
      this.events?.up();
    },
    message: (channel, payload) => (channel === this.keys.control ? this.onControl(payload) : this.events?.records(receivePublications(payload))),
  };

  /** @throws TypeError when `options` name a `client` that is not an ioredis `Redis` or `Cluster`. */
  constructor(
    options: ResolvedRedisOptions,
    limits: RedisHistoryLimits,
    private readonly logger: LoggerService,
  ) {
    this.options = ioredisOptions(options);
    this.keys = new RedisKeys(options.keyPrefix);
    this.description = `Redis at ${describeSource(this.options.source)}`;
    this.maxQueued = options.maxQueued;
    this.startWithoutBackend = options.startWithoutRedis;
    this.connections = new RedisConnections(this.options, this.listener);
    this.ordering = this.connections.cluster ? 'per-topic' : 'total';
    this.history = new RedisHistory(this.connections.command, this.keys, this.connections.cluster, limits);
    if (!this.connections.cluster) {
      this.patterns = {
        subscribe: (patterns) => this.subscribePatterns(patterns),
        unsubscribe: (patterns) => this.unsubscribePatterns(patterns),
        topicsAfter: (after, patterns) => this.onCommand(this.history.topicsAfter(after, patterns), 'a pattern read'),
      };
    }
  }

  /**
   * Subscribes the globs the watched patterns need, `patterns` now among them, then lets go of
   * the globs no longer needed: subscribing first, so that nothing is missed in between (a record
   * routed twice is dropped by the core). A glob is asked for once, however many patterns need it
   * (after a lost connection, again: Redis then holds none).
   */
  private async subscribePatterns(patterns: readonly string[]): Promise<void> {
    for (const pattern of patterns) this.watchPattern(pattern);
    const wanted = this.globsWanted();
    await Promise.all([...wanted].map((glob) => this.holdGlob(glob)));
    this.dropUnwantedGlobs();
  }

  private unsubscribePatterns(patterns: readonly string[]): void {
    for (const pattern of patterns) {
      if (!this.watchedPatterns.delete(pattern)) continue;
      const glob = this.keys.patternGlob(pattern);
      const count = this.globUses.get(glob)! - 1;
      if (count > 0) this.globUses.set(glob, count);
      else this.globUses.delete(glob);
    }
    // Fewer patterns may need globs not held yet (the instance leaves the catch-all glob).
    const wanted = this.globsWanted();
    Promise.all([...wanted].map((glob) => this.holdGlob(glob)))
      .then(() => this.dropUnwantedGlobs())
      .catch(() => undefined);
  }

  /** Resolves once `glob` is subscribed (asked for now, or already). */
  private holdGlob(glob: string): Promise<void> {
    let held = this.heldGlobs.get(glob);
    if (!held) {
      held = this.onSubscriber(this.connections.psubscribe([glob]), 'a pattern subscription');
      this.heldGlobs.set(glob, held);
      const asked = held;
      asked.catch(() => this.heldGlobs.get(glob) === asked && this.heldGlobs.delete(glob));
    }
    return held;
  }

  /**
   * One glob per first segment of the watched patterns (`RedisKeys.patternGlob`), or only the
   * catch-all glob past {@link MAX_GLOBS}: Redis tests every publication against every glob its
   * clients hold, so an instance never holds more than that many, whatever its clients use.
   */
  private globsWanted(): Set<string> {
    if (this.globUses.size <= MAX_GLOBS) return new Set(this.globUses.keys());
    return new Set([this.keys.patternGlob('#')]);
  }

  private watchPattern(pattern: string): void {
    if (this.watchedPatterns.has(pattern)) return;
    this.watchedPatterns.add(pattern);
    const glob = this.keys.patternGlob(pattern);
    this.globUses.set(glob, (this.globUses.get(glob) ?? 0) + 1);
  }

  /** Lets go of the globs held that the patterns watched now do not need (asked after others may have changed them). */
  private dropUnwantedGlobs(): void {
    const wanted = this.globsWanted();
    const extra = [...this.heldGlobs.keys()].filter((glob) => !wanted.has(glob));
    for (const glob of extra) this.heldGlobs.delete(glob);
    this.connections.punsubscribe(extra).catch(() => undefined);
  }

  /** @throws PushletRedisUnavailableError when Redis cannot be reached in time (and `startWithoutRedis` is not set). */
  async start(events: BrokerEvents): Promise<void> {
    this.events = events;
    try {
      await withTimeout(this.connections.connect(), this.options.connectTimeoutMs, 'the connection');
    } catch (error) {
      const cause = reason(this.connections.lastError ?? error);
      if (this.options.startWithoutRedis) throw new Error(cause, { cause: error });
      throw new PushletRedisUnavailableError(MESSAGES.redisUnavailable(describeSource(this.options.source), cause), { cause: error });
    }
  }

  isConnected(): boolean {
    return !this.stopped && this.connections.commandReady && this.connections.subscriberReady;
  }

  /**
   * After a (re)connection: on a single server, checks whether Redis restarted or lost its data
   * (`EPOCH_SCRIPT` moves the history horizon past what was lost); loads the scripts (a restarted
   * Redis has none cached); subscribes the control channel.
   */
  async prepare(): Promise<void> {
    if (!this.connections.cluster) {
      const runIds = await this.onCommand(this.connections.runIds(), 'INFO');
      await this.onCommand(this.history.checkEpoch(runIds), 'the run marker check');
    }
    await this.onCommand(this.history.loadScripts(), 'SCRIPT LOAD');
    await this.onSubscriber(this.connections.subscribeControl(this.keys.control), 'the control channel');
  }

  append(publications: readonly BrokerPublication[]): Array<Promise<Position>> {
    return this.history
      .appendAll(publications, (call) => this.onCommand(call, 'a publication'))
      .map(async (id) => {
        const position = parsePosition(await id);
        if (!position) throw new PushletRedisError(MESSAGES.publishFailed('an unreadable id'));
        return position;
      });
  }

  async subscribe(topics: readonly string[]): Promise<void> {
    await this.onSubscriber(this.connections.subscribe(topics.map((topic) => this.keys.channel(topic))), 'a subscription');
  }

  unsubscribe(topics: readonly string[]): void {
    this.connections.unsubscribe(topics.map((topic) => this.keys.channel(topic))).catch(() => undefined);
  }

  read(requests: ReadonlyArray<{ readonly topic: string; readonly after: Position }>): Promise<TopicRead[]> {
    return this.onCommand(this.history.read(requests), 'a history read');
  }

  tail(requests: readonly TailRequest[]): Promise<BrokerRecord[][]> {
    return this.onCommand(this.history.tail(requests), 'a history read');
  }

  positions(topics: readonly string[]): Promise<Position[]> {
    return this.onCommand(this.history.positions(topics), 'a position');
  }

  /** Unreachable, loading, failing over or busy: not a refusal (see `isTransient`). */
  unreachable(error: unknown): boolean {
    return isTransient(error);
  }

  /**
   * Sends an instance-wide command on the control channel (classic pub/sub: every instance gets it
   * live, this one included; one cut off from Redis at that moment misses it).
   * @throws PushletRedisError when Redis is unreachable or does not answer in time.
   */
  async control(command: PushletControlCommand): Promise<void> {
    await this.onCommand(this.connections.command.publish(this.keys.control, encodeControl(command)), 'a control command');
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    try {
      await this.connections.close(this.options.commandTimeoutMs);
    } finally {
      this.events = undefined;
    }
  }

  /**
   * Presence in this broker's Redis (single server or Cluster), shared by every instance on it;
   * its commands share the broker's command connection and timeout.
   */
  presenceStore(ttlMs: number, onAvailable: (listener: () => void) => () => void): RedisPresenceStore {
    return new RedisPresenceStore(
      this.connections.command,
      this.keys,
      this.connections.cluster,
      ttlMs,
      (call, what) => this.onCommand(call, what),
      onAvailable,
    );
  }

  /** An instance-wide command from the control channel: checked, never trusted; a bad one is logged and ignored. */
  private onControl(payload: string): void {
    const command = parseControl(payload);
    if (!command) {
      this.logger.warn(`ignored a malformed message of ${payload.length} characters on the control channel ${this.keys.control}`);
      return;
    }
    this.events?.control(command);
  }

  /** A command's answer, or a failure once it times out or its connection closes. */
  private onCommand<T>(command: Promise<T>, what: string): Promise<T> {
    return this.commandClosed.race(withTimeout(command, this.options.commandTimeoutMs, what));
  }

  private onSubscriber<T>(command: Promise<T>, what: string): Promise<T> {
    return this.subscriberClosed.race(withTimeout(command, this.options.commandTimeoutMs, what));
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
