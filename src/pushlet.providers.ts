import type { Provider } from '@nestjs/common';
import { MemoryBroker } from './core/memory-broker.js';
import { PUSHLET_BROKER, type PushletBroker } from './interfaces/broker.interface.js';
import type { PushletBrokerFactory, PushletModuleOptions, ResolvedPushletOptions } from './interfaces/pushlet-options.interface.js';
import { PUSHLET_OPTIONS } from './pushlet.constants.js';
import { MESSAGES } from './pushlet.messages.js';
import { PUSHLET_MODULE_OPTIONS } from './pushlet.module-definition.js';
import { resolveOptions } from './pushlet.options.js';

export const optionsProvider: Provider = {
  provide: PUSHLET_OPTIONS,
  useFactory: (options: PushletModuleOptions) => resolveOptions(options),
  inject: [PUSHLET_MODULE_OPTIONS],
};

/** A factory (`createBroker`) rather than a broker (`start`). */
function isBrokerFactory(broker: PushletBroker | PushletBrokerFactory): broker is PushletBrokerFactory {
  return typeof (broker as Partial<PushletBrokerFactory>).createBroker === 'function' && typeof (broker as Partial<PushletBroker>).start !== 'function';
}

/**
 * The Redis broker, loaded only now: an app without Redis never loads ioredis (an optional peer
 * dependency), and says which package is missing when it is not installed.
 */
async function loadRedisBroker(): Promise<typeof import('./cluster/redis-broker.js').RedisBroker> {
  try {
    return (await import('./cluster/redis-broker.js')).RedisBroker;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && /'ioredis'|"ioredis"/.test(String((error as Error).message))) {
      throw new Error(MESSAGES.redisNotInstalled, { cause: error });
    }
    throw error;
  }
}

/**
 * The `broker` option if given (a factory builds it now), else the Redis broker when the `redis`
 * option names a Redis, else the in-memory broker (the pattern of nestjs/throttler's storage).
 */
export const brokerProvider: Provider = {
  provide: PUSHLET_BROKER,
  useFactory: async (options: ResolvedPushletOptions): Promise<PushletBroker> => {
    const { broker, history, logger } = options;
    if (broker) return isBrokerFactory(broker) ? await broker.createBroker({ history, logger }) : broker;
    if (options.redis) return new (await loadRedisBroker())(options.redis, history, logger);
    return new MemoryBroker(history);
  },
  inject: [PUSHLET_OPTIONS],
};
