import type { IncomingMessage } from 'node:http';
import { Module, type DynamicModule } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { Registry } from 'prom-client';
import { PushletModule, type PushletRedisOptions } from '../src/index.js';
import { PushletHealthModule } from '../src/health/index.js';
import { PushletMetricsModule } from '../src/metrics/index.js';
import { DemoController } from './demo.controller.js';
import { HealthController, MetricsController } from './ops.controller.js';
import { SendController } from './send.controller.js';

export interface SampleConfig {
  /** `redis://host:port` switches on distributed mode. */
  redisUrl?: string;
  /** Seed nodes of a Redis Cluster: distributed mode on the cluster (instead of `redisUrl`). */
  redisClusterNodes?: Array<{ host: string; port: number }>;
  /** Prefix of the module's Redis keys and channels (default `pushlet:`). */
  redisKeyPrefix?: string;
  heartbeatMs?: number;
  /** Token that unlocks `private/*` topics (default `demo-token`). */
  token?: string;
  /** Prometheus metrics at `/metrics` (default true); `/health` and `/stats` are always there. */
  metrics?: boolean;
}

/**
 * Topics under `private/` need the token, as an `x-pushlet-token` header (server-side clients)
 * or a `token` query parameter (browsers: EventSource and WebSocket cannot set headers).
 */
function hasToken(request: IncomingMessage, token: string): boolean {
  const fromQuery = new URL(request.url ?? '/', 'http://localhost').searchParams.get('token');
  return request.headers['x-pushlet-token'] === token || fromQuery === token;
}

/** The module's `redis` option from the sample's config: a cluster, one server, or none (in memory). */
function redisOption(config: SampleConfig): { redis?: PushletRedisOptions } {
  const keyPrefix = config.redisKeyPrefix ? { keyPrefix: config.redisKeyPrefix } : {};
  if (config.redisClusterNodes && config.redisClusterNodes.length > 0) {
    return { redis: { cluster: { nodes: config.redisClusterNodes }, ...keyPrefix } };
  }
  return config.redisUrl ? { redis: { url: config.redisUrl, ...keyPrefix } } : {};
}

/** The sample app: the module used exactly as an application would use it. */
@Module({})
export class AppModule {
  static register(config: SampleConfig = {}): DynamicModule {
    // Each app its own registry: tests start several sample apps in one process.
    const metrics = config.metrics === false ? [] : [PushletMetricsModule.forRoot({ registry: new Registry() })];
    return {
      module: AppModule,
      imports: [
        ...metrics,
        TerminusModule,
        PushletHealthModule,
        PushletModule.forRoot({
          heartbeatInterval: config.heartbeatMs ?? 30_000,
          authorize: ({ topic, request }) => !topic.startsWith('private/') || hasToken(request, config.token ?? 'demo-token'),
          // Distributed mode: every sample instance on the same Redis shares topics and history.
          ...redisOption(config),
        }),
      ],
      controllers: [DemoController, SendController, HealthController, ...(config.metrics === false ? [] : [MetricsController])],
    };
  }
}
