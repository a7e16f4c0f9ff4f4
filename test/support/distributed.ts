import type { INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import type { RedisKeys } from '../../src/cluster/redis-keys.js';
import { PushletHub } from '../../src/pushlet.hub.js';
import { PUSHLET_BROKER, type RecoveryCoreStats, type PushletModuleOptions, type PushletRedisOptions } from '../../src/index.js';
import { RedisBroker } from '../../src/cluster/index.js';
import { startApp, type TestApp } from './app.js';
import type { TestSubscriber } from './subscribers.js';

/**
 * App instances joined through one Redis, and everything they and their subscribers hold, so
 * that `closeAll()` in `afterEach` leaves nothing behind even when a test fails half-way.
 */
export class Instances {
  readonly apps: TestApp[] = [];
  readonly subscribers: TestSubscriber[] = [];
  readonly redisClients: Redis[] = [];
  private static prefixes = 0;

  /** A key prefix of its own, so that tests sharing a Redis server never see each other's history. */
  static freshPrefix(): string {
    Instances.prefixes += 1;
    return `pt${process.pid}-${Instances.prefixes}:`;
  }

  /** Starts `count` instances with the same `redis` option (and a fresh key prefix unless given). */
  async start(count: number, redis: PushletRedisOptions, options: PushletModuleOptions = {}): Promise<TestApp[]> {
    const shared: PushletRedisOptions = { keyPrefix: Instances.freshPrefix(), ...redis };
    const started: TestApp[] = [];
    for (let i = 0; i < count; i += 1) {
      const app = await startApp({ heartbeatInterval: 60_000, ...options, redis: shared });
      this.apps.push(app);
      started.push(app);
    }
    return started;
  }

  /** Keeps a subscriber to be closed by {@link closeAll}. */
  track<T extends TestSubscriber>(subscriber: T): T {
    this.subscribers.push(subscriber);
    return subscriber;
  }

  /** A raw client of the test's own (closed by {@link closeAll}). */
  redis(url: string): Redis {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    this.redisClients.push(client);
    return client;
  }

  async closeAll(): Promise<void> {
    for (const subscriber of this.subscribers.splice(0)) subscriber.close();
    for (const app of this.apps.splice(0)) await app.close();
    for (const client of this.redisClients.splice(0)) client.disconnect();
  }
}

/** The Redis broker of an app instance (its keys), with the recovery core's link state and counters. */
export function brokerOf(app: TestApp | INestApplication): { readonly keys: RedisKeys; stats(): RecoveryCoreStats } {
  const nest = 'app' in app ? app.app : app;
  const broker = nest.get(PUSHLET_BROKER);
  if (!(broker instanceof RedisBroker)) throw new Error('not running in distributed mode');
  const core = nest.get(PushletHub).core;
  return { keys: broker.keys, stats: () => core.stats() };
}

/** Data strings of messages, for comparing what was published with what arrived. */
export function dataOf(messages: ReadonlyArray<{ data: string }>): string[] {
  return messages.map((m) => m.data);
}
