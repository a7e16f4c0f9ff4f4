import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { register } from 'prom-client';
import { PushletService } from '../pushlet.service.js';
import { PushletMetricSet, type PushletMetricsRegistry } from './pushlet-metrics.js';
import { PUSHLET_METRICS_OPTIONS } from './pushlet-metrics.module-definition.js';
import type { PushletMetricsModuleOptions } from './pushlet-metrics.options.js';

/**
 * This app's Pushlet metrics on its registry: joins the registry's {@link PushletMetricSet} when
 * the module starts and leaves it at shutdown. Inject it to serve `/metrics` from a controller.
 */
@Injectable()
export class PushletMetrics implements OnModuleInit, OnApplicationShutdown {
  /** The registry the metrics are on (the `registry` option, or prom-client's global one). */
  readonly registry: PushletMetricsRegistry;
  private set: PushletMetricSet | undefined;

  constructor(
    @Inject(PUSHLET_METRICS_OPTIONS) private readonly options: PushletMetricsModuleOptions,
    private readonly pushlet: PushletService,
  ) {
    this.registry = options.registry ?? register;
  }

  onModuleInit(): void {
    this.set = PushletMetricSet.on(this.registry, this.options.buckets);
    this.set.add(this.pushlet);
  }

  onApplicationShutdown(): void {
    this.set?.remove(this.pushlet);
    this.set = undefined;
  }

  /** The `Content-Type` of {@link metrics}. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Everything on the registry (Pushlet's metrics and any others) in the exposition format. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}
