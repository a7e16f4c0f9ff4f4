import type { IncomingMessage } from 'node:http';
import { Injectable, type MessageEvent } from '@nestjs/common';
import type { Observable } from 'rxjs';
import { assertEvent, assertPublishableTopic, BROADCAST_TOPIC, dataToString, DEFAULT_EVENT } from './core/topic.js';
import type { PushletMessage } from './interfaces/message.interface.js';
import type { PresenceData, PushletIdentity } from './protocol/frames.js';
import type { PushletStats, PushletStatsOptions } from './interfaces/stats.interface.js';
import type { PushletObserver } from './metrics/pushlet-counters.js';
import { PushletHub } from './pushlet.hub.js';
import { PushletValidationError } from './core/errors.js';
import { MESSAGES } from './pushlet.messages.js';
import { messageStream, sessionStream } from './pushlet.stream.js';

/** Options of {@link PushletService.stream}. */
export interface PushletStreamOptions {
  /** Resume after this message id (pass the `Last-Event-ID` header). */
  lastEventId?: string;
  /**
   * The HTTP request of the stream. When given, the `authorize` option is asked for each topic,
   * the connection counts against the limits and in `stats()`, and the stream ends when the
   * client stops reading (outgoing buffer over `limits.bufferBytes`).
   */
  request?: IncomingMessage;
  /**
   * Who the client is, as your route's guard found it: `authorize` is told, presence shows it,
   * `limits.maxConnectionsPerUser` and `disconnect()` apply. The `authenticate` option is not run
   * for `stream()`: your route authenticates.
   */
  identity?: PushletIdentity;
  /**
   * Without `lastEventId`: each topic's latest `rewind` messages still in history first, then live
   * ones (capped by `limits.maxRewind`). Default 0.
   */
  rewind?: number;
}

/** Options of {@link PushletService.subscribe}. */
export interface PushletSubscribeOptions {
  /** Replay the messages published after this id first. */
  lastEventId?: string;
  /** Without `lastEventId`: each topic's latest `rewind` messages still in history first (capped by `limits.maxRewind`). */
  rewind?: number;
  /** Also receive `publishToAll` messages (topic `*`). Default false. */
  broadcasts?: boolean;
}

/** Options of {@link PushletService.history}. */
export interface PushletHistoryReadOptions {
  /** Most messages to return (the newest ones, or the newest before `before`). Default `limits.maxHistoryPage`. */
  limit?: number;
  /** The id of a message: only messages before it (the previous page). */
  before?: string;
}

/** Publish to topics, and read them from server-side code or your own `@Sse()` routes. */
@Injectable()
export class PushletService {
  constructor(private readonly hub: PushletHub) {}

  /**
   * Publishes `data` on `topic` to every subscriber, SSE or WebSocket, on every instance.
   * `data` may be a string (sent as is) or any JSON value (sent as its JSON text).
   * Resolves to the message as published, with its id.
   * @throws PushletValidationError for a bad topic, event or payload.
   */
  async publish(topic: string, event: string | undefined, data: unknown): Promise<PushletMessage> {
    assertPublishableTopic(topic);
    const name = event ?? DEFAULT_EVENT;
    assertEvent(name);
    return this.send(topic, name, dataToString(data));
  }

  /** Sends `data` to every connected client once, whatever it subscribes to; its topic is `*`. */
  async publishToAll(event: string | undefined, data: unknown): Promise<PushletMessage> {
    const name = event ?? DEFAULT_EVENT;
    assertEvent(name);
    return this.send(BROADCAST_TOPIC, name, dataToString(data));
  }

  /**
   * Who is on presence topic `topic` (see the `presence` option), across every instance: each
   * member is one connection's subscription, `{ clientId, identity, transport, since }`.
   * @throws PushletValidationError when `topic` is not a presence topic.
   * @throws PushletUnavailableError when the presence store cannot be read now (Redis unreachable).
   */
  presence(topic: string): Promise<PresenceData> {
    return this.hub.presence.members(topic);
  }

  /** How many members presence topic `topic` has across every instance; cheaper than {@link presence}. Same errors. */
  presenceCount(topic: string): Promise<number> {
    return this.hub.presence.count(topic);
  }

  /**
   * Closes every connection of user `userId` (identity `id`) on every instance: SSE streams get
   * `pushlet:disconnected` (`data`: the reason) and end, WebSocket connections get the same notice
   * and close with 4002 (the reason as close reason), `stream()` streams get the notice and
   * complete. Not a ban: the user may connect again (refuse that in `authenticate`).
   * Resolves with the number of connections closed on this instance, once the broker has sent the
   * command to the others (Redis: pub/sub, at most once, to instances connected to Redis now).
   * @param reason told to the clients; at most 123 bytes of UTF-8 are kept. Default "disconnected by the server".
   * @throws PushletValidationError for a user id that is not a non-empty string (at most 1024 characters).
   * @throws PushletRedisError when Redis cannot take the command (this instance's connections are closed already).
   */
  disconnect(userId: string, reason?: string): Promise<number> {
    return this.hub.sessions.disconnect(userId, reason);
  }

  /**
   * A page of `topic`'s history, every instance's (what rewind and resume read): its newest
   * messages still in history, at most `limit`, oldest first; with `before` (a message's id), the
   * page ending just before it, so `before: page[0].id` reads the previous page. The messages are
   * those clients receive (`id`, `topic`, `event`, `data`, `timestamp`); on a Redis Cluster each
   * `id` is the topic's resume cursor (docs/protocol.md, "History"). Not asked of `authorize`:
   * server code decides for itself.
   * @throws PushletValidationError for a bad topic (patterns have no history), limit or `before`.
   * @throws PushletUnsupportedError when the broker cannot read history (no `PushletBroker.tail`).
   * @throws PushletUnavailableError while the broker cannot be read (Redis unreachable).
   */
  async history(topic: string, options: PushletHistoryReadOptions = {}): Promise<PushletMessage[]> {
    const { limit = this.hub.options.limits.maxHistoryPage, before } = options;
    if (!(typeof limit === 'number' && Number.isSafeInteger(limit) && limit >= 1) || (before !== undefined && typeof before !== 'string')) {
      throw new PushletValidationError(MESSAGES.historyOptions);
    }
    return this.hub.history.read(topic, limit, before);
  }

  /** Changes the heartbeat interval of both protocols at once. */
  setHeartbeatInterval(ms: number): void {
    this.hub.heartbeat.setInterval(ms);
  }

  get heartbeatInterval(): number {
    return this.hub.heartbeat.interval;
  }

  /**
   * The event stream of `topics` for a route of your own, behind your own guards and path:
   *
   * ```ts
   * @Sse('feed')
   * feed(@Query('topic') topic: string, @Headers('last-event-id') lastEventId?: string) {
   *   return this.pushlet.stream(topic, { lastEventId });
   * }
   * ```
   * Emits `pushlet:connected` first, then missed messages (with `lastEventId`), then live ones,
   * broadcasts and heartbeat comments.
   * @throws BadRequestException for a bad topic list.
   */
  stream(topics: string | readonly string[] | undefined, options: PushletStreamOptions = {}): Observable<MessageEvent> {
    return sessionStream(this.hub, topics, options);
  }

  /**
   * Messages of `topics` for server-side consumers. With `lastEventId`, missed messages come
   * first. Unsubscribing releases the topics.
   */
  subscribe(topics: string | readonly string[], options: PushletSubscribeOptions = {}): Observable<PushletMessage> {
    const list = typeof topics === 'string' ? [topics] : [...topics];
    this.hub.admission.validateTopics(list);
    return messageStream(this.hub, list, options.lastEventId, options.broadcasts ?? false, options.rewind);
  }

  /**
   * What this instance is doing now: connections, subscriptions, counters since start and the
   * broker's link (everything the Prometheus metrics show). Cheap enough to call every second;
   * with `{ topics: true }` it also lists each topic's subscribers, which walks the topics.
   */
  stats(options: PushletStatsOptions = {}): PushletStats {
    const { registry, counters, heartbeat, core, admission } = this.hub;
    const connections = admission.connectionStats();
    const status = core.status();
    const { resumesFromWindow, resumesFromBroker, windowBytes } = core.stats();
    const stats: PushletStats = {
      connections: { sse: connections.sse, ws: connections.ws, total: connections.total },
      ...registry.stats(),
      ...counters.stats(),
      broker: { connected: status.connected, state: status.state, queued: status.queued, resumesFromWindow, resumesFromBroker, windowBytes },
      heartbeatInterval: heartbeat.interval,
    };
    return options.topics ? { ...stats, topicSubscribers: registry.topicSubscribers() } : stats;
  }

  /**
   * Reports timings to `observer` as they happen (publish to broker acknowledgement; publish to
   * delivery here), for histograms of your own; `pushlet-nestjs/metrics` uses it. Returns the
   * function that stops it.
   */
  observe(observer: PushletObserver): () => void {
    return this.hub.counters.observe(observer);
  }

  private send(topic: string, event: string, data: string): Promise<PushletMessage> {
    return this.hub.publisher.publish(topic, event, data, 'server');
  }
}

export { toHttpException } from './pushlet.stream.js';
