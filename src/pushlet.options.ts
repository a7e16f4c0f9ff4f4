import { Logger } from '@nestjs/common';
import { DEFAULTS } from './pushlet.constants.js';
import type { PushletModuleOptions, ResolvedPushletOptions } from './interfaces/pushlet-options.interface.js';
import { resolveRedisOptions } from './cluster/redis-options.js';
import { MESSAGES } from './pushlet.messages.js';

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value <= 0) {
    throw new RangeError(`Pushlet option ${name} must be a positive number, got ${String(value)}`);
  }
  return value;
}

function routePath(path: string | undefined, fallback: string): string {
  const value = path ?? fallback;
  return value.startsWith('/') ? value : `/${value}`;
}

/** Fills in every default and rejects nonsense early, at start-up rather than at first use. */
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
    throw new RangeError(`Pushlet options sse.path and ws.path must differ (both are ${sse.path})`);
  }
  if (options.redis && options.broker) throw new RangeError(MESSAGES.redisWithBroker);
  const limits = options.limits ?? {};
  const history = options.history ?? {};
  return {
    heartbeatInterval: positive(options.heartbeatInterval, DEFAULTS.heartbeatInterval, 'heartbeatInterval'),
    sse,
    ws,
    logger: options.logger ?? new Logger('Pushlet'),
    limits: {
      topicsPerConnection: positive(limits.topicsPerConnection, DEFAULTS.topicsPerConnection, 'limits.topicsPerConnection'),
      maxConnections: positive(limits.maxConnections, Infinity, 'limits.maxConnections'),
      maxConnectionsPerAddress: positive(limits.maxConnectionsPerAddress, Infinity, 'limits.maxConnectionsPerAddress'),
      bufferBytes: positive(limits.bufferBytes, DEFAULTS.bufferBytes, 'limits.bufferBytes'),
    },
    history: {
      maxCount: positive(history.maxCount, DEFAULTS.historyMaxCount, 'history.maxCount'),
      maxAgeMs: positive(history.maxAgeMs, DEFAULTS.historyMaxAgeMs, 'history.maxAgeMs'),
      maxTopics: positive(history.maxTopics, DEFAULTS.historyMaxTopics, 'history.maxTopics'),
    },
    authorize: options.authorize,
    broker: options.broker,
    redis: options.redis ? resolveRedisOptions(options.redis) : undefined,
  };
}
