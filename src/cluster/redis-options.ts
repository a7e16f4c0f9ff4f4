// Loaded by every app (the `redis` option is resolved at start-up): it must name no ioredis type
// and import no ioredis module. The ioredis-typed views and the checks that need ioredis's classes
// are in redis-client.ts, loaded with the Redis broker only.
import { MESSAGES } from '../pushlet.messages.js';
import { booleanOption, isUnset, nonNegativeInteger, positiveNumber } from '../pushlet.option-values.js';

/**
 * A Redis Cluster to join: seed nodes (any of its masters will do) and ioredis Cluster options.
 * `ClusterOptions` is ioredis's `ClusterOptions` in `pushlet-nestjs/redis` (`RedisBrokerOptions`),
 * any object here, so that an app that does not use Redis never reads ioredis's declarations.
 */
export interface PushletRedisClusterOptions<ClusterOptions extends object = object> {
  /** `{ host, port }` objects or `host:port` strings. */
  nodes: ReadonlyArray<{ host: string; port: number } | string>;
  /** Passed to ioredis `Cluster` (its `redisOptions` reach every node connection). */
  options?: ClusterOptions;
}

/**
 * Distributed mode (`PushletModule.forRoot({ redis: … })`): every instance that names the same
 * Redis (and `keyPrefix`) shares topics, history and ids. Give exactly one of `url`, `host`,
 * `cluster` or `client`; with none of them (each unset or `''`, as an unset environment variable
 * reads) the module runs without Redis and logs so. Numbers may be given as numeric strings.
 *
 * The type parameters are ioredis's `Redis | Cluster`, `RedisOptions` and `ClusterOptions` in
 * `pushlet-nestjs/redis` (`RedisBrokerOptions`, for `redisBroker()`); here they are any object,
 * so that the core's declarations never name ioredis (whose declarations need `redis-errors`'
 * types under `skipLibCheck: false`) and the module loads ioredis only when Redis is configured.
 */
export interface PushletRedisOptions<Client extends object = object, RedisOptions extends object = object, ClusterOptions extends object = object> {
  /** `redis://[[user]:password@]host[:port][/db]` or `rediss://…`. */
  url?: string;
  host?: string;
  /** Default 6379. */
  port?: number;
  username?: string;
  password?: string;
  /** Database number (single server only). Default 0. */
  db?: number;
  /** A Redis Cluster; messages travel over sharded pub/sub (SSUBSCRIBE / SPUBLISH). */
  cluster?: PushletRedisClusterOptions<ClusterOptions>;
  /**
   * A connected (or connecting) ioredis `Redis` or `Cluster` of your own. The module runs its
   * commands on it, subscribes on a `duplicate()`, and never quits it: you close it yourself.
   */
  client?: Client;
  /** Prefix of every key and channel. Default `pushlet:`. Instances must agree on it. */
  keyPrefix?: string;
  /**
   * When Redis cannot be reached at start-up: `false` (default) fails the start with an error
   * naming the address; `true` starts local-only (this instance's subscribers get this
   * instance's publications) and joins the others as soon as Redis answers.
   */
  startWithoutRedis?: boolean;
  /** How long start-up waits for Redis before failing (or starting local-only). Default 5000 ms. */
  connectTimeoutMs?: number;
  /**
   * How long a Redis command may take before the module treats Redis as unreachable: a
   * publication is then delivered locally and queued for Redis. Default 2000 ms.
   */
  commandTimeoutMs?: number;
  /** Publications kept while Redis is unreachable, sent when it is back; the oldest go first. Default 10 000. */
  maxQueued?: number;
  /** Extra ioredis options for the connections the module creates (ignored with `client`). */
  options?: RedisOptions;
}

/** Where the module's connections come from. */
export type RedisSource<Client extends object = object, ClusterOptions extends object = object> =
  | { readonly kind: 'url'; readonly url: string }
  | { readonly kind: 'host'; readonly host: string; readonly port: number; readonly username?: string; readonly password?: string; readonly db?: number }
  | { readonly kind: 'cluster'; readonly nodes: ReadonlyArray<{ host: string; port: number }>; readonly options?: ClusterOptions }
  | { readonly kind: 'client'; readonly client: Client };

/** {@link PushletRedisOptions} with defaults filled in (typed with ioredis's types in redis-client.ts). */
export interface ResolvedRedisOptions<Client extends object = object, RedisOptions extends object = object, ClusterOptions extends object = object> {
  readonly source: RedisSource<Client, ClusterOptions>;
  readonly keyPrefix: string;
  readonly startWithoutRedis: boolean;
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
  readonly maxQueued: number;
  readonly redisOptions: RedisOptions;
}

export const REDIS_DEFAULTS = {
  keyPrefix: 'pushlet:',
  port: 6379,
  connectTimeoutMs: 5_000,
  commandTimeoutMs: 2_000,
  maxQueued: 10_000,
} as const;

function positive(value: unknown, fallback: number, name: string): number {
  return positiveNumber(value, fallback, `redis.${name}`);
}

function parseNode(node: { host: string; port: number } | string): { host: string; port: number } {
  if (typeof node !== 'string') return { host: node.host, port: Number(node.port) };
  const colon = node.lastIndexOf(':');
  if (colon < 0) return { host: node, port: REDIS_DEFAULTS.port };
  return { host: node.slice(0, colon), port: Number(node.slice(colon + 1)) };
}

/** The source named by the options, or `undefined` when none is (each unset or empty). */
function resolveSource<Client extends object, ClusterOptions extends object>(
  options: PushletRedisOptions<Client, object, ClusterOptions>,
): RedisSource<Client, ClusterOptions> | undefined {
  const given = { url: !isUnset(options.url), host: !isUnset(options.host), cluster: !isUnset(options.cluster), client: !isUnset(options.client) };
  const count = Object.values(given).filter(Boolean).length;
  if (count === 0) return undefined;
  if (count > 1) throw new RangeError(MESSAGES.redisOneSource);
  if (given.url) {
    if (typeof options.url !== 'string' || !/^rediss?:\/\//.test(options.url)) throw new RangeError(MESSAGES.redisUrl(String(options.url)));
    return { kind: 'url', url: options.url };
  }
  if (given.host) {
    return {
      kind: 'host',
      host: options.host!,
      port: positive(options.port, REDIS_DEFAULTS.port, 'port'),
      username: isUnset(options.username) ? undefined : options.username,
      password: isUnset(options.password) ? undefined : options.password,
      db: nonNegativeInteger(options.db, 'redis.db'),
    };
  }
  if (given.cluster) {
    const nodes = (options.cluster!.nodes ?? []).map(parseNode);
    if (nodes.length === 0) throw new RangeError(MESSAGES.redisClusterNodes);
    return { kind: 'cluster', nodes, options: options.cluster!.options };
  }
  // Checked against ioredis's classes when the Redis broker is created (redis-client.ts); here
  // only its shape, so that nonsense still fails when the options are resolved.
  const client = options.client as { duplicate?: unknown; options?: unknown } | undefined;
  if (typeof client !== 'object' || client === null || typeof client.duplicate !== 'function' || typeof client.options !== 'object') {
    throw new TypeError(MESSAGES.redisClient);
  }
  return { kind: 'client', client: options.client! };
}

/**
 * Fills in the defaults of the `redis` option and rejects nonsense at start-up; `undefined` when
 * the option names no Redis at all (then the module runs without one).
 */
export function resolveRedisOptions<Client extends object = object, RedisOptions extends object = object, ClusterOptions extends object = object>(
  options: PushletRedisOptions<Client, RedisOptions, ClusterOptions>,
): ResolvedRedisOptions<Client, RedisOptions, ClusterOptions> | undefined {
  const source = resolveSource(options);
  if (!source) return undefined;
  const keyPrefix = isUnset(options.keyPrefix) ? REDIS_DEFAULTS.keyPrefix : options.keyPrefix;
  if (typeof keyPrefix !== 'string' || keyPrefix.length === 0 || /[{}]/.test(keyPrefix)) {
    throw new RangeError(MESSAGES.redisKeyPrefix);
  }
  return {
    source,
    keyPrefix,
    startWithoutRedis: booleanOption(options.startWithoutRedis, false, 'redis.startWithoutRedis'),
    connectTimeoutMs: positive(options.connectTimeoutMs, REDIS_DEFAULTS.connectTimeoutMs, 'connectTimeoutMs'),
    commandTimeoutMs: positive(options.commandTimeoutMs, REDIS_DEFAULTS.commandTimeoutMs, 'commandTimeoutMs'),
    maxQueued: positive(options.maxQueued, REDIS_DEFAULTS.maxQueued, 'maxQueued'),
    redisOptions: options.options ?? ({} as RedisOptions),
  };
}
