import type { PushletMetricsBuckets, PushletMetricsRegistry } from './pushlet-metrics.js';

/** Options of `PushletMetricsModule.forRoot` / `forRootAsync`. */
export interface PushletMetricsModuleOptions {
  /**
   * The prom-client registry the metrics are registered on. Default: prom-client's global
   * `register` (what `@willsoto/nestjs-prometheus` and `collectDefaultMetrics()` use). Apps of one
   * process that share a registry share the metrics (registered once, figures summed).
   */
  registry?: PushletMetricsRegistry;
  /** Histogram buckets in seconds (the first app to register on a registry decides them). */
  buckets?: PushletMetricsBuckets;
}
