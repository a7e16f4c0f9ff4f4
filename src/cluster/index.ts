// `pushlet-nestjs/redis`: distributed mode through Redis or Redis Cluster, a separate entry so that
// the main one neither loads ioredis nor names its types (an app without Redis never reads
// ioredis's declarations). Needs `ioredis` (an optional peer dependency) installed.
import type { PushletBrokerFactory } from '../interfaces/pushlet-options.interface.js';
import { MemoryBroker } from '../core/memory-broker.js';
import { MESSAGES } from '../pushlet.messages.js';
import { RedisBroker } from './redis-broker.js';
import type { RedisBrokerOptions } from './redis-client.js';
import { resolveRedisOptions } from './redis-options.js';

export { RedisBroker } from './redis-broker.js';
export { RedisPresenceStore } from './redis-presence.js';
export { PushletRedisError, PushletRedisUnavailableError } from './redis-errors.js';
export type { RedisBrokerOptions } from './redis-client.js';
export type { PushletRedisClusterOptions, PushletRedisOptions } from './redis-options.js';

/**
 * The Redis broker for the `broker` option: `PushletModule.forRoot({ broker: redisBroker({ url }) })`,
 * the same as `forRoot({ redis: { url } })` with `client`, `options` and `cluster.options` typed
 * as ioredis's `Redis | Cluster`, `RedisOptions` and `ClusterOptions`. The options are checked
 * when the module starts; with no `url`, `host`, `cluster` or `client` (each unset or empty) the
 * module runs in memory and logs so, as with the `redis` option.
 */
export function redisBroker(options: RedisBrokerOptions): PushletBrokerFactory {
  return {
    createBroker({ history, logger }) {
      const resolved = resolveRedisOptions(options);
      if (resolved) return new RedisBroker(resolved, history, logger);
      logger.warn(MESSAGES.redisNotConfigured);
      return new MemoryBroker(history);
    },
  };
}
