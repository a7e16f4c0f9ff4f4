import { Module, type DynamicModule } from '@nestjs/common';
import { PushletMetricsConfigurableModule, PUSHLET_METRICS_OPTIONS_TYPE } from './pushlet-metrics.module-definition.js';
import { PushletMetrics } from './pushlet-metrics.service.js';

/**
 * Prometheus metrics of the module (`pushlet_*`), on a prom-client registry: the app's own, or
 * prom-client's global one. Import it next to `PushletModule` (whose `PushletService` it reads):
 *
 * ```ts
 * imports: [PushletModule.forRoot({}), PushletMetricsModule.forRoot({ registry })]
 * ```
 * Serving `/metrics` stays the app's choice: `@willsoto/nestjs-prometheus`, or a controller that
 * injects {@link PushletMetrics}.
 */
@Module({
  providers: [PushletMetrics],
  exports: [PushletMetrics],
})
export class PushletMetricsModule extends PushletMetricsConfigurableModule {
  /** Registers the metrics on `options.registry` (default: prom-client's global registry). */
  static override forRoot(options: typeof PUSHLET_METRICS_OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(options);
  }
}
