import type { CanActivate, LoggerService, Type } from '@nestjs/common';
import type { PushletRedisOptions, ResolvedRedisOptions } from '../cluster/redis-options.js';
import type { PushletBroker } from './broker.interface.js';

/** Which endpoint asks for a topic. */
export type PushletTransport = 'sse' | 'ws';

/** What the `authorize` option is asked about. */
export interface PushletAuthorizeContext {
  readonly topic: string;
  readonly transport: PushletTransport;
  /** The HTTP request of the SSE stream or of the WebSocket upgrade. */
  readonly request: import('node:http').IncomingMessage;
}

export interface PushletSseOptions {
  /** Path of the built-in SSE route. Default `/events`. */
  path?: string;
}

export interface PushletWsOptions {
  /** Path of the built-in WebSocket endpoint. Default `/ws`. */
  path?: string;
  /** Frame type of server-to-client messages. Default `binary` (as the Go original). */
  frame?: 'binary' | 'text';
  /** Largest accepted client frame in bytes; larger ones close with 1009. Default 64 KiB. */
  maxPayload?: number;
  /**
   * When set, upgrades from any other `Origin` are refused with 403 (before upgrading). Compared
   * case-insensitively. Upgrades without an `Origin` header (not from a browser page, such as the
   * Go client) are let through: such clients can send any `Origin` they like anyway.
   */
  allowedOrigins?: readonly string[];
  /** Commands a connection may send per second before it is closed with 1008. Default 50. */
  commandsPerSecond?: number;
}

export interface PushletLimitOptions {
  /** Topics one connection may subscribe to. Default 50. */
  topicsPerConnection?: number;
  /** Open connections (SSE and WebSocket together). Default unlimited. */
  maxConnections?: number;
  /** Open connections from one client address. Default unlimited. */
  maxConnectionsPerAddress?: number;
  /** Bytes queued for one slow client before it is disconnected. Default 1 MiB. */
  bufferBytes?: number;
  /**
   * Largest message accepted by `publish()`, in bytes of its topic, event and data (UTF-8).
   * Default 256 KiB (at most half of `bufferBytes`, so that two of them in a row never make a
   * client that reads at all look slow). Must be at most half of `bufferBytes`.
   */
  maxMessageBytes?: number;
}

export interface PushletHistoryOptions {
  /** Messages kept per topic for resume. Default 1000. */
  maxCount?: number;
  /** How long a message stays replayable, in milliseconds. Default 5 minutes. */
  maxAgeMs?: number;
  /**
   * Topics whose history the in-memory broker keeps at once (the least recently published is
   * dropped first). Default unlimited: memory is bounded by `maxBytes`.
   */
  maxTopics?: number;
  /**
   * Bytes of history the in-memory broker keeps in all topics together (estimated), the oldest
   * message of any topic evicted first. Default 64 MiB.
   */
  maxBytes?: number;
}

/** A guard for the built-in endpoints: an instance, or a class resolved from the app's providers. */
export type PushletGuard = CanActivate | Type<CanActivate>;

/** How the built-in endpoints (`/events`, `/ws`) relate to the app's routing. */
export interface PushletRouteOptions {
  /** Put the app's global prefix (`app.setGlobalPrefix('api')`) in front of both paths. Default true. */
  useGlobalPrefix?: boolean;
  /**
   * Run the app's global guards (`APP_GUARD` providers and `app.useGlobalGuards`) on every SSE
   * request and WebSocket upgrade, before any header or upgrade answer, as on every other route.
   * Default true.
   */
  useGlobalGuards?: boolean;
  /** More guards for the built-in endpoints only, run after the global ones. */
  guards?: readonly PushletGuard[];
}

/** Options of `PushletModule.forRoot` / `forRootAsync`. */
export interface PushletModuleOptions {
  /** How the built-in endpoints relate to the app's global prefix and guards. */
  routes?: PushletRouteOptions;
  /** Heartbeat interval in milliseconds, for SSE comments and WebSocket pings. Default 30 000. */
  heartbeatInterval?: number;
  /** The built-in SSE route, or `false` to mount none (use `PushletService.stream` in your own). */
  sse?: PushletSseOptions | false;
  /** The built-in WebSocket endpoint, or `false` to leave it out. */
  ws?: PushletWsOptions | false;
  /** Any Nest `LoggerService`. Default: Nest's `Logger` with the context `Pushlet`. */
  logger?: LoggerService;
  limits?: PushletLimitOptions;
  history?: PushletHistoryOptions;
  /** Asked for every SSE topic and WebSocket subscription; a no is 403 / `pushlet:error`. */
  authorize?: (context: PushletAuthorizeContext) => boolean | Promise<boolean>;
  /** A broker of your own (replaces the in-memory default). */
  broker?: PushletBroker;
  /**
   * Distributed mode: instances naming the same Redis share topics, history and ids, so that a
   * message published on any instance reaches every subscriber on every instance, and a client
   * may resume on another instance. See {@link PushletRedisOptions}.
   */
  redis?: PushletRedisOptions;
}

/** Options with every default filled in. */
export interface ResolvedPushletOptions {
  readonly routes: { readonly useGlobalPrefix: boolean; readonly useGlobalGuards: boolean; readonly guards: readonly PushletGuard[] };
  readonly heartbeatInterval: number;
  readonly sse: Required<PushletSseOptions> | false;
  readonly ws: (Required<Omit<PushletWsOptions, 'allowedOrigins'>> & { allowedOrigins?: readonly string[] }) | false;
  readonly logger: LoggerService;
  readonly limits: Required<PushletLimitOptions>;
  readonly history: Required<PushletHistoryOptions>;
  readonly authorize?: PushletModuleOptions['authorize'];
  readonly broker?: PushletBroker;
  readonly redis?: ResolvedRedisOptions;
}
