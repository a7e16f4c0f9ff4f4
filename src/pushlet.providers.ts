import type { Provider } from '@nestjs/common';
import { RedisBroker } from './cluster/redis-broker.js';
import { MemoryBroker } from './core/memory-broker.js';
import { PUSHLET_BROKER } from './interfaces/broker.interface.js';
import type { PushletModuleOptions, ResolvedPushletOptions } from './interfaces/pushlet-options.interface.js';
import { PUSHLET_OPTIONS } from './pushlet.constants.js';
import { PUSHLET_MODULE_OPTIONS } from './pushlet.module-definition.js';
import { resolveOptions } from './pushlet.options.js';

export const optionsProvider: Provider = {
  provide: PUSHLET_OPTIONS,
  useFactory: (options: PushletModuleOptions) => resolveOptions(options),
  inject: [PUSHLET_MODULE_OPTIONS],
};

/**
 * The `broker` option if given, else the Redis broker when the `redis` option is set, else the
 * in-memory broker (the pattern of nestjs/throttler's storage).
 */
export const brokerProvider: Provider = {
  provide: PUSHLET_BROKER,
  useFactory: (options: ResolvedPushletOptions) => {
    if (options.broker) return options.broker;
    if (options.redis) return new RedisBroker(options.redis, options.history, options.logger);
    return new MemoryBroker(options.history);
  },
  inject: [PUSHLET_OPTIONS],
};
