import type { IncomingMessage } from 'node:http';
import { Module, type DynamicModule } from '@nestjs/common';
import { PushletModule } from '../src/index.js';
import { DemoController } from './demo.controller.js';
import { SendController } from './send.controller.js';

export interface SampleConfig {
  /** `redis://host:port` switches on distributed mode. */
  redisUrl?: string;
  heartbeatMs?: number;
  /** Token that unlocks `private/*` topics (default `demo-token`). */
  token?: string;
}

/**
 * Topics under `private/` need the token, as an `x-pushlet-token` header (server-side clients)
 * or a `token` query parameter (browsers: EventSource and WebSocket cannot set headers).
 */
function hasToken(request: IncomingMessage, token: string): boolean {
  const fromQuery = new URL(request.url ?? '/', 'http://localhost').searchParams.get('token');
  return request.headers['x-pushlet-token'] === token || fromQuery === token;
}

/** The sample app: the module used exactly as an application would use it. */
@Module({})
export class AppModule {
  static register(config: SampleConfig = {}): DynamicModule {
    return {
      module: AppModule,
      imports: [
        PushletModule.forRoot({
          heartbeatInterval: config.heartbeatMs ?? 30_000,
          authorize: ({ topic, request }) => !topic.startsWith('private/') || hasToken(request, config.token ?? 'demo-token'),
          // Distributed mode: every sample instance on the same Redis shares topics and history.
          ...(config.redisUrl ? { redis: { url: config.redisUrl } } : {}),
        }),
      ],
      controllers: [DemoController, SendController],
    };
  }
}
