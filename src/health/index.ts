/**
 * `pushlet-nestjs/health`: readiness and liveness for `@nestjs/terminus` (an optional peer
 * dependency: only this entry point imports it).
 */
export { PushletHealthModule } from './pushlet-health.module.js';
export { DEFAULT_READINESS_MAX_QUEUED, PushletHealthIndicator, type PushletReadinessOptions } from './pushlet-health.indicator.js';
