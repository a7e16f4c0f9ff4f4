import type { IncomingMessage } from 'node:http';
import {
  BadRequestException,
  ForbiddenException,
  Injectable,
  ServiceUnavailableException,
  UnauthorizedException,
  type MessageEvent,
} from '@nestjs/common';
import { Observable } from 'rxjs';
import { EventEmitter } from 'node:events';
import type { WriteQueue } from './core/bounded-writer.js';
import type { Session, SessionOutput } from './core/session.js';
import { PushletError, PushletForbiddenError, PushletLimitError, PushletUnauthorizedError, PushletUnavailableError, PushletValidationError } from './core/errors.js';
import { assertEvent, assertPublishableTopic, BROADCAST_TOPIC, dataToString, DEFAULT_EVENT, DEFAULT_TOPIC } from './core/topic.js';
import type { PushletMessage } from './interfaces/message.interface.js';
import type { PresenceData, PushletIdentity } from './protocol/frames.js';
import type { PushletStats, PushletStatsOptions } from './interfaces/stats.interface.js';
import type { PerTransport, PushletObserver } from './metrics/pushlet-counters.js';
import { isIdentity, PushletHub } from './pushlet.hub.js';
import { SSE_METERS } from './sse/sse-encoder.js';
import { MESSAGES } from './pushlet.messages.js';

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
}

/** Options of {@link PushletService.subscribe}. */
export interface PushletSubscribeOptions {
  /** Replay the messages published after this id first. */
  lastEventId?: string;
  /** Also receive `publishToAll` messages (topic `*`). Default false. */
  broadcasts?: boolean;
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
    return this.hub.presence(topic);
  }

  /** How many members presence topic `topic` has across every instance; cheaper than {@link presence}. Same errors. */
  presenceCount(topic: string): Promise<number> {
    return this.hub.presenceCount(topic);
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
    return this.hub.disconnect(userId, reason);
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
    const list = normaliseTopics(topics);
    try {
      this.hub.validateTopics(list);
    } catch (error) {
      if (options.request) this.hub.counters.refusal('invalid');
      throw toHttpException(error);
    }
    const { lastEventId, request, identity } = options;
    if (identity !== undefined && !isIdentity(identity)) throw new TypeError(MESSAGES.streamIdentity);
    return new Observable<MessageEvent>((subscriber) => {
      const socket = request?.socket;
      let session: Session | undefined;
      const output: SessionOutput = {
        message: (envelope, id) => {
          // Nest encodes the frame; its size is about the payload's.
          if (session?.writer.admit(envelope.message.data.length + 64)) {
            subscriber.next({ id: id ?? envelope.id, type: envelope.message.event, data: envelope.message.data });
          }
        },
        // Nest numbers every event that has no id ("1", "2", …), which a browser would then send
        // back: a notice without one carries the connection's resume id instead.
        notice: (notice) => subscriber.next({ id: notice.id ?? session?.resumeId(), type: notice.event, data: notice.data }),
        queue: socket ? { queuedBytes: () => socket.writableLength, drainSource: socket } : UNBOUNDED,
        end: () => subscriber.complete(),
        // Nest writes about the same bytes as the built-in route's text format.
        meter: SSE_METERS.text,
      };
      try {
        session = this.hub.openSession(output, 'sse', request, identity);
      } catch (error) {
        subscriber.error(toHttpException(error));
        return undefined;
      }
      const opened = session;
      const stopHeartbeat = this.hub.heartbeat.onTick((now) => subscriber.next({ comment: `heartbeat ${now.toISOString()}` } as MessageEvent));
      const start = async () => {
        await opened.admitAll(list);
        if (!subscriber.closed) await opened.start(list, lastEventId);
      };
      start().catch((error: unknown) => subscriber.error(toHttpException(error)));
      return () => {
        stopHeartbeat();
        opened.dispose();
      };
    });
  }

  /**
   * Messages of `topics` for server-side consumers. With `lastEventId`, missed messages come
   * first. Unsubscribing releases the topics.
   */
  subscribe(topics: string | readonly string[], options: PushletSubscribeOptions = {}): Observable<PushletMessage> {
    const list = typeof topics === 'string' ? [topics] : [...topics];
    this.hub.validateTopics(list);
    return new Observable<PushletMessage>((subscriber) => {
      const output: SessionOutput = {
        // With ids ordered per topic, `id` is the resume id to hand back as `lastEventId`.
        message: (envelope, id) => subscriber.next(id === undefined ? envelope.message : { ...envelope.message, id }),
        notice: () => undefined,
        queue: UNBOUNDED,
        end: () => subscriber.complete(),
      };
      const session = this.hub.openSession(output, 'sse');
      const topicsToAdd = options.broadcasts ? [...list, BROADCAST_TOPIC] : list;
      session.subscribe(topicsToAdd, options.lastEventId, undefined).catch((error: unknown) => subscriber.error(error));
      return () => session.dispose();
    });
  }

  /**
   * What this instance is doing now: connections, subscriptions, counters since start and the
   * broker's link (everything the Prometheus metrics show). Cheap enough to call every second;
   * with `{ topics: true }` it also lists each topic's subscribers, which walks the topics.
   */
  stats(options: PushletStatsOptions = {}): PushletStats {
    const { registry, counters, heartbeat, core } = this.hub;
    const connections = this.hub.connections.snapshot();
    const { server, client } = counters.published;
    const status = core.status();
    const stats: PushletStats = {
      connections: { sse: connections.sse, ws: connections.ws, total: connections.total },
      topics: registry.topicCount,
      subscribers: registry.subscriberCount,
      subscriptions: registry.subscriptionCount,
      published: server + client,
      publishedBy: { server, client },
      deliveries: figures(counters.deliveries),
      bytesSent: figures(counters.bytesSent),
      slowConsumersDisconnected: counters.slowConsumers.sse + counters.slowConsumers.ws,
      slowConsumers: figures(counters.slowConsumers),
      resumes: { ...counters.resumes },
      replayed: counters.replayed,
      refused: { ...counters.refused },
      broker: { connected: status.connected, state: status.state, queued: status.queued },
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
    return this.hub.publish(topic, event, data, 'server');
  }

}

function normaliseTopics(topics: string | readonly string[] | undefined): string[] {
  if (topics === undefined) return [DEFAULT_TOPIC];
  const list = typeof topics === 'string' ? [topics] : [...topics];
  return list.length === 0 ? [DEFAULT_TOPIC] : list;
}

function figures({ sse, ws }: PerTransport) {
  return { sse, ws, total: sse + ws };
}

/** The queue of a session with no socket of its own to bound (server-side consumers). */
const UNBOUNDED: WriteQueue = { queuedBytes: () => 0, drainSource: new EventEmitter() };

/** Maps the module's errors onto Nest's HTTP exceptions; anything else passes through. */
export function toHttpException(error: unknown): unknown {
  if (error instanceof PushletUnavailableError) return new ServiceUnavailableException(error.message);
  if (!(error instanceof PushletError)) return error;
  if (error instanceof PushletValidationError) return new BadRequestException(error.message);
  if (error instanceof PushletForbiddenError) return new ForbiddenException(error.message);
  if (error instanceof PushletUnauthorizedError) return new UnauthorizedException(error.message);
  if (error instanceof PushletLimitError) return new ServiceUnavailableException(error.message);
  return error;
}
