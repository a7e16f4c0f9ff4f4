import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { withTimeout } from './redis-errors.js';
import type { ResolvedIoredisOptions } from './redis-client.js';

/** What the connections report to the broker. */
export interface RedisLinkListener {
  /** The command connection is ready (first time or again). */
  commandReady(): void;
  /** The command connection closed. */
  commandLost(): void;
  /** The subscriber connection is ready again and holds no subscriptions: subscribe everything. */
  subscriberReady(): void;
  /** The subscriber connection (single server) closed: its subscriptions are gone. */
  subscriberLost(): void;
  /** A cluster lost one shard's subscriber connection; ioredis will resubscribe it. */
  shardSubscriberLost(): void;
  /** A cluster re-established its sharded subscriptions (ioredis resubscribes them itself). */
  subscriptionsRestored(): void;
  /** A pub/sub message on one of the module's channels. */
  message(channel: string, payload: string): void;
}

// Reconnect quickly: an instance cut off from Redis cannot receive others' messages.
const retryStrategy = (times: number): number => Math.min(50 * 2 ** Math.min(times, 5), 1_000);

/**
 * The two connections of distributed mode and their differences between a single server and a
 * Cluster: commands (scripts, history) on one, pub/sub on a duplicate. Commands fail fast while
 * disconnected instead of queueing in ioredis: the broker has its own queue, in order, with
 * duplicates filtered.
 */
export class RedisConnections {
  readonly cluster: boolean;
  readonly command: Redis | Cluster;
  readonly subscriber: Redis | Cluster;
  /** The last connection error, which says more than "Connection is closed". */
  lastError: Error | undefined;
  private readonly ownsCommand: boolean;
  private readonly detachers: Array<() => void> = [];

  constructor(
    options: ResolvedIoredisOptions,
    private readonly listener: RedisLinkListener,
  ) {
    const source = options.source;
    const own: RedisOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      connectTimeout: options.connectTimeoutMs,
      retryStrategy,
      ...options.redisOptions,
    };
    switch (source.kind) {
      case 'url':
        this.command = new Redis(source.url, own);
        break;
      case 'host':
        this.command = new Redis({
          host: source.host,
          port: source.port,
          username: source.username,
          password: source.password,
          db: source.db,
          ...own,
        });
        break;
      case 'cluster': {
        const clusterOptions: ClusterOptions = {
          lazyConnect: true,
          enableOfflineQueue: false,
          // Not `enableAutoPipelining`: ioredis batches its auto-pipelines per node, and a MOVED
          // reply during a topology change then fails commands instead of redirecting them
          // (redis/ioredis#2075; our chaos test saw recovery reads fail with MOVED).
          clusterRetryStrategy: retryStrategy,
          ...source.options,
          redisOptions: {
            connectTimeout: options.connectTimeoutMs,
            autoResendUnfulfilledCommands: false,
            ...options.redisOptions,
            ...source.options?.redisOptions,
          },
        };
        this.command = new Cluster([...source.nodes], clusterOptions);
        break;
      }
      case 'client':
        this.command = source.client;
        break;
    }
    this.ownsCommand = source.kind !== 'client';
    this.cluster = this.command instanceof Cluster;
    this.subscriber =
      this.command instanceof Cluster
        ? this.command.duplicate([], {
            lazyConnect: true,
            shardedSubscribers: true,
            enableOfflineQueue: true,
            redisOptions: { ...this.command.options.redisOptions, enableOfflineQueue: true, autoResubscribe: true },
          })
        : this.command.duplicate({
            lazyConnect: true,
            enableOfflineQueue: false,
            autoResubscribe: false,
            autoResendUnfulfilledCommands: false,
            retryStrategy,
          });
    this.listen();
  }

  get commandReady(): boolean {
    return this.command.status === 'ready';
  }

  get subscriberReady(): boolean {
    return this.subscriber.status === 'ready';
  }

  /** Connects both (those not connected yet); rejects with the first failure. */
  async connect(): Promise<void> {
    await Promise.all([connectIfIdle(this.command), connectIfIdle(this.subscriber)]);
  }

  async subscribe(channels: readonly string[]): Promise<void> {
    if (channels.length === 0) return;
    if (this.subscriber instanceof Cluster) {
      // Sharded channels: one SSUBSCRIBE per slot.
      const subscriber = this.subscriber;
      try {
        await Promise.all(channels.map((channel) => subscriber.ssubscribe(channel)));
      } catch (error) {
        // After every master restarted, ioredis can keep a slot without a shard subscriber until
        // its next slots refresh (seen for over 20 s): ask for one now, so that the recovery the
        // caller retries finds the subscriber group rebuilt.
        if (error instanceof Error && error.message.startsWith('No sharded subscriber')) subscriber.refreshSlotsCache();
        throw error;
      }
    } else {
      await this.subscriber.subscribe(...channels);
    }
  }

  async unsubscribe(channels: readonly string[]): Promise<void> {
    if (channels.length === 0) return;
    if (this.subscriber instanceof Cluster) {
      const subscriber = this.subscriber;
      await Promise.all(channels.map((channel) => subscriber.sunsubscribe(channel)));
    } else {
      await this.subscriber.unsubscribe(...channels);
    }
  }

  /** Single server: subscribes pub/sub globs (pattern subscriptions; see `RedisKeys.patternGlob`). */
  async psubscribe(globs: readonly string[]): Promise<void> {
    if (globs.length > 0) await (this.subscriber as Redis).psubscribe(...globs);
  }

  async punsubscribe(globs: readonly string[]): Promise<void> {
    if (globs.length > 0) await (this.subscriber as Redis).punsubscribe(...globs);
  }

  /**
   * Subscribes the classic channel of instance-wide commands: on a Cluster through its one classic
   * subscriber connection (any node: a Cluster broadcasts classic PUBLISH to every node; ioredis
   * moves it to another node and subscribes again when that node goes).
   */
  async subscribeControl(channel: string): Promise<void> {
    await this.subscriber.subscribe(channel);
  }

  /** `[server, run id]` of every server holding the module's data (every master of a cluster). */
  async runIds(): Promise<Array<[string, string]>> {
    const servers: Array<[string, Redis]> =
      this.command instanceof Cluster
        ? this.command.nodes('master').map((node) => [`${node.options.host}:${node.options.port}`, node])
        : [['server', this.command]];
    return Promise.all(
      servers.map(async ([name, redis]): Promise<[string, string]> => {
        const info = await redis.info('server');
        const runId = /run_id:(\w+)/.exec(info)?.[1];
        if (!runId) throw new Error(`no run_id in INFO of ${name}`);
        return [name, runId];
      }),
    );
  }

  /**
   * Unsubscribes and quits the module's own connections, each on its own so that one failure
   * does not strand the others. A client passed in by the application stays open.
   */
  async close(timeoutMs: number): Promise<void> {
    for (const detach of this.detachers.splice(0)) detach();
    try {
      if (this.subscriber.status === 'ready') await withTimeout(this.unsubscribeAll(), timeoutMs, 'UNSUBSCRIBE');
    } catch {
      // Quitting drops the subscriptions anyway.
    }
    await closeClient(this.subscriber, timeoutMs);
    if (this.ownsCommand) await closeClient(this.command, timeoutMs);
  }

  private async unsubscribeAll(): Promise<void> {
    if (this.subscriber instanceof Cluster) {
      // ioredis forgets the channels on quit; nothing to send per shard.
      return;
    }
    await this.subscriber.unsubscribe();
    await this.subscriber.punsubscribe();
  }

  private listen(): void {
    const listener = this.listener;
    this.on(this.command, 'ready', () => listener.commandReady());
    this.on(this.command, 'close', () => listener.commandLost());
    const remember = (error: Error) => {
      this.lastError = error;
    };
    if (this.ownsCommand) this.on(this.command, 'error', remember);
    this.on(this.subscriber, 'error', remember);
    if (this.subscriber instanceof Cluster) {
      this.on(this.subscriber, 'smessage', (channel: string, payload: string) => listener.message(channel, payload));
      // The classic channel of instance-wide commands (`subscribeControl`).
      this.on(this.subscriber, 'message', (channel: string, payload: string) => listener.message(channel, payload));
      // A shard's subscriber connection ended ('-node' from the subscriber group, at once), or was
      // replaced ('-subscriber', at the next slots refresh): its subscriptions are gone.
      this.on(this.subscriber, '-node', () => listener.shardSubscriberLost());
      this.on(this.subscriber, '-subscriber', () => listener.shardSubscriberLost());
      this.on(this.subscriber, 'subscribersReady', () => listener.subscriptionsRestored());
      this.on(this.subscriber, 'ready', () => listener.subscriberReady());
    } else {
      this.on(this.subscriber, 'message', (channel: string, payload: string) => listener.message(channel, payload));
      this.on(this.subscriber, 'pmessage', (_glob: string, channel: string, payload: string) => listener.message(channel, payload));
      this.on(this.subscriber, 'close', () => listener.subscriberLost());
      this.on(this.subscriber, 'ready', () => listener.subscriberReady());
    }
  }

  private on(emitter: Redis | Cluster, event: string, handler: (...args: any[]) => void): void {
    emitter.on(event, handler);
    this.detachers.push(() => emitter.off(event, handler));
  }
}

async function connectIfIdle(client: Redis | Cluster): Promise<void> {
  if (client.status === 'ready') return;
  if (client.status === 'wait' || client.status === 'end') {
    await client.connect();
    return;
  }
  // Connecting already (a client of the application's): wait for it.
  await new Promise<void>((resolve, reject) => {
    const ready = () => {
      client.off('error', failed);
      resolve();
    };
    const failed = (error: Error) => {
      client.off('ready', ready);
      reject(error);
    };
    client.once('ready', ready);
    client.once('error', failed);
  });
}

async function closeClient(client: Redis | Cluster, timeoutMs: number): Promise<void> {
  try {
    if (client.status === 'ready') await withTimeout(client.quit(), timeoutMs, 'QUIT');
    else client.disconnect();
  } catch {
    client.disconnect();
  }
}
