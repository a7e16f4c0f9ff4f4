import { Logger } from '@nestjs/common';
import { DEFAULTS } from './pushlet.constants.js';
import type { PushletModuleOptions, PushletPresenceOptions, ResolvedPushletOptions } from './interfaces/pushlet-options.interface.js';
import { resolveRedisOptions } from './cluster/redis-options.js';
import { MESSAGES } from './pushlet.messages.js';
import { nonNegativeInteger, positiveNumber as positive } from './pushlet.option-values.js';

function routePath(path: string | undefined, fallback: string): string {
  const value = path ?? fallback;
  return value.startsWith('/') ? value : `/${value}`;
}

/** A whole number of 1 or more for the option `name`; `fallback` when not given. */
function positiveInteger(value: unknown, fallback: number, name: string): number {
  const number = nonNegativeInteger(value, name);
  if (number === 0) throw new RangeError(MESSAGES.positiveNumber(name, '0 (number)'));
  return number ?? fallback;
}

/** The presence option with its topic list turned into a predicate. */
function resolvePresence(presence: PushletPresenceOptions): NonNullable<ResolvedPushletOptions['presence']> {
  const topics = presence.topics;
  let isPresenceTopic: (topic: string) => boolean;
  if (typeof topics === 'function') isPresenceTopic = topics;
  else if (Array.isArray(topics) && topics.every((prefix) => typeof prefix === 'string')) {
    const prefixes = [...(topics as readonly string[])];
    isPresenceTopic = (topic) => prefixes.some((prefix) => topic.startsWith(prefix));
  } else throw new RangeError(MESSAGES.presenceTopics);
  return { isPresenceTopic, ttlMs: positive(presence.ttlMs, DEFAULTS.presenceTtlMs, 'presence.ttlMs') };
}

/**
 * Fills in every default and rejects nonsense early, at start-up rather than at first use.
 * Numeric options take numbers or numeric strings (values read from the environment), and a
 * `redis` option that names no source (every one unset or empty) means no Redis, which is logged
 * once through the configured logger.
 */
export function resolveOptions(options: PushletModuleOptions = {}): ResolvedPushletOptions {
  const sse = options.sse === false ? false : { path: routePath(options.sse?.path, DEFAULTS.ssePath) };
  const ws =
    options.ws === false
      ? false
      : {
          path: routePath(options.ws?.path, DEFAULTS.wsPath),
          frame: options.ws?.frame ?? DEFAULTS.wsFrame,
          maxPayload: positive(options.ws?.maxPayload, DEFAULTS.wsMaxPayload, 'ws.maxPayload'),
          commandsPerSecond: positive(options.ws?.commandsPerSecond, DEFAULTS.wsCommandsPerSecond, 'ws.commandsPerSecond'),
          allowedOrigins: options.ws?.allowedOrigins,
        };
  if (sse && ws && sse.path === ws.path) {
    throw new RangeError(MESSAGES.pathsMustDiffer(sse.path));
  }
  const logger = options.logger ?? new Logger('Pushlet');
  const redis = options.redis ? resolveRedisOptions(options.redis) : undefined;
  if (redis && options.broker) throw new RangeError(MESSAGES.redisWithBroker);
  const limits = options.limits ?? {};
  const bufferBytes = positive(limits.bufferBytes, DEFAULTS.bufferBytes, 'limits.bufferBytes');
  const maxMessageBytes = positive(limits.maxMessageBytes, Math.min(DEFAULTS.maxMessageBytes, bufferBytes / 2), 'limits.maxMessageBytes');
  if (maxMessageBytes * 2 > bufferBytes) throw new RangeError(MESSAGES.maxMessageBytesTooLarge(maxMessageBytes, bufferBytes));
  const history = options.history ?? {};
  const resolved: ResolvedPushletOptions = {
    heartbeatInterval: positive(options.heartbeatInterval, DEFAULTS.heartbeatInterval, 'heartbeatInterval'),
    sse,
    ws,
    logger,
    limits: {
      topicsPerConnection: positive(limits.topicsPerConnection, DEFAULTS.topicsPerConnection, 'limits.topicsPerConnection'),
      patternsPerConnection: positive(limits.patternsPerConnection, DEFAULTS.patternsPerConnection, 'limits.patternsPerConnection'),
      maxConnections: positive(limits.maxConnections, Infinity, 'limits.maxConnections'),
      maxConnectionsPerUser: positive(limits.maxConnectionsPerUser, Infinity, 'limits.maxConnectionsPerUser'),
      maxConnectionsPerAddress: positive(limits.maxConnectionsPerAddress, Infinity, 'limits.maxConnectionsPerAddress'),
      bufferBytes,
      maxMessageBytes,
      maxRewind: nonNegativeInteger(limits.maxRewind, 'limits.maxRewind') ?? DEFAULTS.maxRewind,
      maxHistoryPage: positiveInteger(limits.maxHistoryPage, DEFAULTS.maxHistoryPage, 'limits.maxHistoryPage'),
    },
    history: {
      maxCount: positive(history.maxCount, DEFAULTS.historyMaxCount, 'history.maxCount'),
      maxAgeMs: positive(history.maxAgeMs, DEFAULTS.historyMaxAgeMs, 'history.maxAgeMs'),
      maxTopics: positive(history.maxTopics, DEFAULTS.historyMaxTopics, 'history.maxTopics'),
      maxBytes: positive(history.maxBytes, DEFAULTS.historyMaxBytes, 'history.maxBytes'),
      recentWindowBytes: nonNegativeInteger(history.recentWindowBytes, 'history.recentWindowBytes') ?? DEFAULTS.historyRecentWindowBytes,
    },
    routes: {
      useGlobalPrefix: options.routes?.useGlobalPrefix ?? true,
      useGlobalGuards: options.routes?.useGlobalGuards ?? true,
      guards: options.routes?.guards ?? [],
    },
    authenticate: options.authenticate,
    authorize: options.authorize,
    authorizePublish: options.authorizePublish,
    onClientPublish: options.onClientPublish,
    presence: options.presence ? resolvePresence(options.presence) : undefined,
    broker: options.broker,
    redis,
  };
  if ('redis' in options && !redis) logger.warn(MESSAGES.redisNotConfigured);
  return resolved;
}
