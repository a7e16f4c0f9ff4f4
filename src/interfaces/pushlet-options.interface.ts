import type { CanActivate, LoggerService, Type } from '@nestjs/common';
// redis-options.ts names no ioredis type: an app that does not use Redis never reads ioredis's declarations.
import type { PushletRedisOptions, ResolvedRedisOptions } from '../cluster/redis-options.js';
import type { PushletBroker } from './broker.interface.js';
import type { PushletIdentity, PushletTransport } from '../protocol/frames.js';

export type { PushletIdentity, PushletTransport };

/** What the `authorize` option is asked about. */
export interface PushletAuthorizeContext {
  readonly topic: string;
  readonly transport: PushletTransport;
  /** The HTTP request of the SSE stream or of the WebSocket upgrade. */
  readonly request: import('node:http').IncomingMessage;
  /** The connection's identity (`authenticate`), `null` when anonymous. */
  readonly identity: PushletIdentity | null;
}

/** What the `authenticate` option is told besides the request. */
export interface PushletAuthenticateContext {
  readonly transport: PushletTransport;
  /** The token of a WebSocket `refresh` command (absent when the connection opens). */
  readonly token?: string;
  /** On `refresh`: the identity the connection has now. */
  readonly identity?: PushletIdentity;
}

/** What `authorizePublish` and `onClientPublish` are asked about: a client's `publish` command. */
export interface PushletClientPublishContext {
  readonly topic: string;
  readonly event: string;
  /** The data as it will be sent (strings as is; other JSON values as their JSON text). */
  readonly data: string;
  readonly identity: PushletIdentity | null;
  /** The HTTP request of the WebSocket upgrade. */
  readonly request: import('node:http').IncomingMessage;
}

/** What `onClientPublish` may return: `false` refuses, an object replaces the event and/or data, nothing keeps the message. */
export type PushletClientPublishDecision = false | void | undefined | { readonly event?: string; readonly data?: unknown };

/** Presence: who is subscribed to which topics, across instances. */
export interface PushletPresenceOptions {
  /**
   * Which topics keep presence (members, `pushlet:join`/`pushlet:leave`): a predicate, or a list
   * of prefixes (`['room/']`).
   */
  topics: ((topic: string) => boolean) | readonly string[];
  /**
   * How long a member outlives its instance, in milliseconds: each instance refreshes its members
   * every third of it, so a crashed instance's members are gone (and a `pushlet:leave` sent for
   * each) within `ttlMs` plus a third. Default 15 000.
   */
  ttlMs?: number;
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
  /** Topics one connection may subscribe to, patterns included. Default 50. */
  topicsPerConnection?: number;
  /** Of those, patterns (`orders/*`, `users/42/#`): each costs a match per message routed to the instance. Default 10. */
  patternsPerConnection?: number;
  /** Open connections (SSE and WebSocket together). Default unlimited. */
  maxConnections?: number;
  /** Open connections of one user (identity `id`) on this instance. Default unlimited. */
  maxConnectionsPerUser?: number;
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
  /**
   * Most messages a rewind (`?rewind=N`, `"rewind": N` in a WebSocket `subscribe`) delivers per
   * topic; a larger rewind is capped to it. 0 turns rewind off. Default 100.
   */
  maxRewind?: number;
  /**
   * Most messages one WebSocket `history` command may ask for (`limit`; a larger one is refused,
   * so that a short page always means the history holds no more). Also the `limit` of a command
   * that gives none. Default 100.
   */
  maxHistoryPage?: number;
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
  /**
   * With Redis (or another remote broker): bytes of recent messages each instance keeps of the
   * topics it watches, in all topics together (estimated, the oldest of any topic evicted first;
   * at most `maxCount` per topic, none older than `maxAgeMs`). A client resuming from a position
   * an instance has followed without a break since is answered from there, without reading
   * Redis (reconnect storms). 0 turns it off. Default 4 MiB.
   */
  recentWindowBytes?: number;
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
  /**
   * Who a connection is, run once per connection (SSE and WebSocket) before any header or upgrade
   * answer, and again with the token of a WebSocket `refresh` command: an identity (any JSON object
   * with a string `id`, optionally `expiresAt` in ms since the epoch), `null` to let the connection
   * in anonymously (not for a `refresh`), or `false` (a throw counts as `false`): HTTP 401.
   * Without it connections are anonymous.
   */
  authenticate?: (
    request: import('node:http').IncomingMessage,
    context: PushletAuthenticateContext,
  ) => PushletIdentity | null | false | Promise<PushletIdentity | null | false>;
  /** Asked for every SSE topic and WebSocket subscription; a no is 403 / `pushlet:error`. */
  authorize?: (context: PushletAuthorizeContext) => boolean | Promise<boolean>;
  /** Asked for every WebSocket `publish` command. Default: every client publication is refused. */
  authorizePublish?: (context: PushletClientPublishContext) => boolean | Promise<boolean>;
  /** Runs on an allowed client publication: `false` refuses it, an object changes its event or data. */
  onClientPublish?: (context: PushletClientPublishContext) => PushletClientPublishDecision | Promise<PushletClientPublishDecision>;
  /** Presence topics (off by default). */
  presence?: PushletPresenceOptions;
  /**
   * A broker of your own (replaces the in-memory default), or a factory that builds one at
   * start-up, such as `redisBroker({ url })` of `pushlet-nestjs/redis`.
   */
  broker?: PushletBroker | PushletBrokerFactory;
  /**
   * Distributed mode: instances naming the same Redis share topics, history and ids, so that a
   * message published on any instance reaches every subscriber on every instance, and a client
   * may resume on another instance. Needs the `ioredis` package (an optional peer dependency),
   * loaded only when this option names a Redis. See {@link PushletRedisOptions}; for ioredis's
   * own types on `client` and `options`, give `broker: redisBroker({ … })` of
   * `pushlet-nestjs/redis` instead.
   */
  redis?: PushletRedisOptions;
}

/** What a {@link PushletBrokerFactory} gets to build its broker with. */
export interface PushletBrokerContext {
  /** The `history` option with its defaults. */
  readonly history: Required<PushletHistoryOptions>;
  /** The module's logger. */
  readonly logger: LoggerService;
}

/**
 * Builds the broker at start-up, from the module's resolved history limits and logger (the
 * `broker` option takes one instead of a broker): `redisBroker()` of `pushlet-nestjs/redis` is one.
 */
export interface PushletBrokerFactory {
  createBroker(context: PushletBrokerContext): PushletBroker | Promise<PushletBroker>;
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
  readonly authenticate?: PushletModuleOptions['authenticate'];
  readonly authorize?: PushletModuleOptions['authorize'];
  readonly authorizePublish?: PushletModuleOptions['authorizePublish'];
  readonly onClientPublish?: PushletModuleOptions['onClientPublish'];
  /** Presence with its predicate and interval resolved; absent when off. */
  readonly presence?: { readonly isPresenceTopic: (topic: string) => boolean; readonly ttlMs: number };
  readonly broker?: PushletBroker | PushletBrokerFactory;
  readonly redis?: ResolvedRedisOptions;
}
