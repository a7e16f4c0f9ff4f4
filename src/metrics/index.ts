/**
 * `pushlet-nestjs/metrics`: Prometheus metrics of the module, on prom-client (an optional peer
 * dependency: only this entry point imports it).
 */
export { PushletMetricsModule } from './pushlet-metrics.module.js';
export { PushletMetrics } from './pushlet-metrics.service.js';
export { PUSHLET_METRICS_OPTIONS } from './pushlet-metrics.module-definition.js';
export type { PushletMetricsModuleOptions } from './pushlet-metrics.options.js';
export {
  DEFAULT_BROKER_LAG_BUCKETS,
  DEFAULT_PUBLISH_DURATION_BUCKETS,
  PUSHLET_METRIC_NAMES,
  PushletMetricSet,
  type PushletMetricsBuckets,
  type PushletMetricsRegistry,
  type PushletMetricsSource,
} from './pushlet-metrics.js';
