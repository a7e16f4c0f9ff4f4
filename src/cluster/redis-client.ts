import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { MESSAGES } from '../pushlet.messages.js';
import { REDIS_DEFAULTS, type PushletRedisOptions, type ResolvedRedisOptions } from './redis-options.js';

/**
 * The Redis options typed with ioredis's own types (`client`, `options`, `cluster.options`): what
 * `redisBroker()` of `pushlet-nestjs/redis` takes. The core's `redis` option is the same
 * interface with those left open (any object), so that it names no ioredis type.
 */
export type RedisBrokerOptions = PushletRedisOptions<Redis | Cluster, RedisOptions, ClusterOptions>;

/** {@link ResolvedRedisOptions} with ioredis's types, as the Redis broker uses them. */
export type ResolvedIoredisOptions = ResolvedRedisOptions<Redis | Cluster, RedisOptions, ClusterOptions>;

/**
 * The resolved options typed with ioredis's types, once a `client` of the caller's is checked to
 * be an ioredis `Redis` or `Cluster` (the options resolver, which loads no ioredis, checks only
 * its shape).
 * @throws TypeError when `client` is not one.
 */
export function ioredisOptions(options: ResolvedRedisOptions): ResolvedIoredisOptions {
  const source = options.source;
  if (source.kind === 'client' && !(source.client instanceof Redis) && !(source.client instanceof Cluster)) throw new TypeError(MESSAGES.redisClient);
  return options as ResolvedIoredisOptions;
}

/** `host:port` (or a list of them) for messages and logs; never a password. */
export function describeSource(source: ResolvedIoredisOptions['source']): string {
  switch (source.kind) {
    case 'url': {
      try {
        const url = new URL(source.url);
        return `${url.hostname || 'localhost'}:${url.port || REDIS_DEFAULTS.port}`;
      } catch {
        return source.url.replace(/\/\/[^@/]*@/, '//');
      }
    }
    case 'host':
      return `${source.host}:${source.port}`;
    case 'cluster':
      return source.nodes.map((n) => `${n.host}:${n.port}`).join(',');
    case 'client': {
      const client = source.client;
      if (client instanceof Cluster) {
        const nodes = (client as unknown as { startupNodes?: Array<{ host?: string; port?: number } | string> }).startupNodes ?? [];
        return nodes.map((n) => (typeof n === 'string' ? n : `${n.host ?? 'localhost'}:${n.port ?? REDIS_DEFAULTS.port}`)).join(',');
      }
      return `${client.options.host ?? 'localhost'}:${client.options.port ?? REDIS_DEFAULTS.port}`;
    }
  }
}
