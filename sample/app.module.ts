import type { IncomingMessage } from 'node:http';
import { Module, type DynamicModule } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { Registry } from 'prom-client';
import { PushletModule, type PushletModuleOptions, type PushletRedisOptions } from '../src/index.js';
import { PushletHealthModule } from '../src/health/index.js';
import { PushletMetricsModule } from '../src/metrics/index.js';
import { DemoController } from './demo.controller.js';
import { HealthController, MetricsController, PresenceController } from './ops.controller.js';
import { SendController } from './send.controller.js';

export interface SampleConfig {
  /** `redis://host:port` switches on distributed mode. */
  redisUrl?: string;
  /** Seed nodes of a Redis Cluster: distributed mode on the cluster (instead of `redisUrl`). */
  redisClusterNodes?: Array<{ host: string; port: number }>;
  /** Prefix of the module's Redis keys and channels (default `pushlet:`). */
  redisKeyPrefix?: string;
  /**
   * `nats://host:port` (several comma-separated): distributed mode through NATS JetStream
   * (`pushlet-nestjs/nats`) instead of Redis. Its client is loaded only then.
   */
  natsUrl?: string;
  /** The JetStream stream (default `PUSHLET`) and subject prefix (default `pushlet`) on that NATS. */
  natsStream?: string;
  natsSubjectPrefix?: string;
  heartbeatMs?: number;
  /** Token that unlocks `private/*` topics (default `demo-token`). */
  token?: string;
  /** Prometheus metrics at `/metrics` (default true); `/health` and `/stats` are always there. */
  metrics?: boolean;
  /** How long a presence member outlives its instance (the module's `presence.ttlMs`, default 15 s). */
  presenceTtlMs?: number;
  /** Open connections from one client address (the module's `limits.maxConnectionsPerAddress`, default unlimited). */
  maxConnectionsPerAddress?: number;
  /**
   * Express's `trust proxy` (`app.set('trust proxy', …)`): behind a load balancer, which hops of
   * `X-Forwarded-For` to believe, so that the client's own address is the one counted and logged
   * (docs/deploy.md). `1`: the one proxy in front. Default: none (the socket's peer).
   */
  trustProxy?: boolean | number | string;
}

/** Longest demo user name. */
const MAX_USER_LENGTH = 64;

/**
 * The demo's identity: `?user=NAME`, or the client SDK's `token` option (`?token=NAME` on
 * WebSocket, `Authorization: Bearer NAME` on SSE) taken as the name itself. Demo only: a real app
 * verifies a token (a signed JWT, a session) and takes the user from it. No name: anonymous.
 */
function demoIdentity(request: IncomingMessage): { id: string } | null | false {
  const query = new URL(request.url ?? '/', 'http://localhost').searchParams;
  const bearer = /^Bearer\s+(.+)$/i.exec(request.headers.authorization ?? '')?.[1];
  const name = (query.get('user') ?? query.get('token') ?? bearer)?.trim();
  if (name === undefined || name === '') return null;
  // eslint-disable-next-line no-control-regex -- a user name with control characters is refused
  return name.length <= MAX_USER_LENGTH && !/[\u0000-\u001f]/.test(name) ? { id: name } : false;
}

/**
 * Topics under `private/` need the token, as an `x-pushlet-token` header (server-side clients)
 * or a `token` query parameter (browsers: EventSource and WebSocket cannot set headers).
 */
function hasToken(request: IncomingMessage, token: string): boolean {
  const fromQuery = new URL(request.url ?? '/', 'http://localhost').searchParams.get('token');
  return request.headers['x-pushlet-token'] === token || fromQuery === token;
}

/** Longest chat text. */
const MAX_CHAT_TEXT = 1_000;

/** A chat message as the room gets it: `{ from, text }`, from the client's `{ text }`; anything else is refused. */
function chatMessage(data: string, from: string): { data: { from: string; text: string } } | false {
  let text: unknown;
  try {
    text = (JSON.parse(data) as { text?: unknown } | null)?.text;
  } catch {
    return false;
  }
  if (typeof text !== 'string' || text.trim() === '' || text.length > MAX_CHAT_TEXT) return false;
  return { data: { from, text } };
}

/** The module's `redis` option from the sample's config: a cluster, one server, or none (in memory). */
function redisOption(config: SampleConfig): { redis?: PushletRedisOptions } {
  const keyPrefix = config.redisKeyPrefix ? { keyPrefix: config.redisKeyPrefix } : {};
  if (config.redisClusterNodes && config.redisClusterNodes.length > 0) {
    return { redis: { cluster: { nodes: config.redisClusterNodes }, ...keyPrefix } };
  }
  return config.redisUrl ? { redis: { url: config.redisUrl, ...keyPrefix } } : {};
}

/**
 * The broker option for NATS JetStream when `natsUrl` is set (the NATS client is loaded only
 * then: `pushlet-nestjs/nats` is its own entry), else the `redis` option (or none: in memory).
 */
async function brokerOption(config: SampleConfig): Promise<Pick<PushletModuleOptions, 'broker' | 'redis'>> {
  if (!config.natsUrl) return redisOption(config);
  const { natsBroker } = await import('../src/nats/index.js');
  return {
    broker: natsBroker({
      servers: config.natsUrl,
      ...(config.natsStream ? { stream: config.natsStream } : {}),
      ...(config.natsSubjectPrefix ? { subjectPrefix: config.natsSubjectPrefix } : {}),
    }),
  };
}

/** The sample app: the module used exactly as an application would use it. */
@Module({})
export class AppModule {
  static async register(config: SampleConfig = {}): Promise<DynamicModule> {
    const broker = await brokerOption(config);
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
          ...(config.maxConnectionsPerAddress ? { limits: { maxConnectionsPerAddress: config.maxConnectionsPerAddress } } : {}),
          authorize: ({ topic, request }) => !topic.startsWith('private/') || hasToken(request, config.token ?? 'demo-token'),
          authenticate: (request) => demoIdentity(request),
          // Chat rooms: who is online, and identified WebSocket clients may post.
          presence: { topics: ['room/'], ...(config.presenceTtlMs ? { ttlMs: config.presenceTtlMs } : {}) },
          authorizePublish: ({ topic, identity }) => identity !== null && topic.startsWith('room/'),
          // Chat messages say who sent them: the server writes the sender, the client only the text.
          onClientPublish: ({ event, data, identity }) => (event === 'chat' ? chatMessage(data, identity?.id ?? '') : undefined),
          // Distributed mode: every sample instance on the same Redis (or NATS) shares topics and history.
          ...broker,
        }),
      ],
      controllers: [DemoController, SendController, HealthController, PresenceController, ...(config.metrics === false ? [] : [MetricsController])],
    };
  }
}
