import type { BrokerEvents, BrokerPublication, PushletBroker, PushletControlCommand, TopicRead } from '../interfaces/broker.interface.js';
import type { BrokerRecord, TailRequest } from '../interfaces/broker.interface.js';
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

  private readonly listener: RedisLinkListener = {
    commandReady: () => this.events?.up(),
    commandLost: () => {
      this.commandClosed.trip();
      this.events?.down();
    },
    subscriberReady: () => this.events?.up(),
    subscriberLost: () => {
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
