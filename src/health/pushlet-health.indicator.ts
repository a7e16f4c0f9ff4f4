import { Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { PushletService } from '../pushlet.service.js';
import { MESSAGES } from '../pushlet.messages.js';

/** Publications waiting for Redis past which an instance is not ready, unless told otherwise. */
export const DEFAULT_READINESS_MAX_QUEUED = 1_000;

/** Options of {@link PushletHealthIndicator.readiness}. */
export interface PushletReadinessOptions {
  /** Publications waiting for Redis past which the instance is not ready. Default 1000. */
  maxQueued?: number;
}

/**
 * Health of the module for `@nestjs/terminus` (an optional peer dependency: only the
 * `pushlet-nestjs/health` entry point imports it), built on its `HealthIndicatorService`:
 *
 * ```ts
 * @Get('health') @HealthCheck()
 * ready() { return this.health.check([() => this.pushlet.readiness('pushlet')]); }
 * ```
 */
@Injectable()
export class PushletHealthIndicator {
  constructor(
    private readonly indicators: HealthIndicatorService,
    private readonly pushlet: PushletService,
  ) {}

  /**
   * Down while the broker is not connected (Redis link not `ready`) or more than `maxQueued`
   * publications wait for it: take the instance out of the load balancer, do not restart it (it
   * recovers by itself when Redis comes back). Always up in memory.
   */
  async readiness<const Key extends string = 'pushlet'>(
    key: Key = 'pushlet' as Key,
    options: PushletReadinessOptions = {},
  ): Promise<HealthIndicatorResult<Key>> {
    const indicator = this.indicators.check(key);
    const { broker, connections } = this.pushlet.stats();
    const maxQueued = options.maxQueued ?? DEFAULT_READINESS_MAX_QUEUED;
    const data = { broker: broker.state, queued: broker.queued, connections: connections.total };
    if (!broker.connected) return indicator.down({ ...data, message: MESSAGES.healthBrokerDown(broker.state) });
    if (broker.queued > maxQueued) return indicator.down({ ...data, message: MESSAGES.healthQueueFull(broker.queued, maxQueued) });
    return indicator.up(data);
  }

  /**
   * Up whenever it is asked: an instance whose event loop answers is alive, whatever its broker
   * does (an outage of Redis is a readiness matter; restarting the instance would not help).
   */
  async liveness<const Key extends string = 'pushlet'>(key: Key = 'pushlet' as Key): Promise<HealthIndicatorResult<Key>> {
    return this.indicators.check(key).up({ connections: this.pushlet.stats().connections.total });
  }
}
