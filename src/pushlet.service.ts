import type { IncomingMessage } from 'node:http';
import {
  BadRequestException,
  ForbiddenException,
  Injectable,
  ServiceUnavailableException,
  type MessageEvent,
} from '@nestjs/common';
import { Observable } from 'rxjs';
import type { Envelope } from './core/envelope.js';
import { drained } from './core/drain.js';
import { PushletError, PushletForbiddenError, PushletLimitError, PushletValidationError } from './core/errors.js';
import { assertEvent, assertPublishableTopic, BROADCAST_TOPIC, dataToString, DEFAULT_EVENT, DEFAULT_TOPIC } from './core/topic.js';
import type { PushletMessage } from './interfaces/message.interface.js';
import type { PushletStats } from './interfaces/stats.interface.js';
import { PushletHub } from './pushlet.hub.js';
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
      throw toHttpException(error);
    }
    const { lastEventId, request } = options;
    return new Observable<MessageEvent>((subscriber) => {
      const slot = request ? this.takeSlot(request) : undefined;
      const socket = request?.socket;
      const bufferBytes = this.hub.options.limits.bufferBytes;
      const overflowing = () => socket !== undefined && socket.writableLength > bufferBytes;
      const feed = this.hub.createFeed({
        deliver: (envelope) => {
          if (overflowing()) {
            this.hub.connections.countSlowConsumer();
            subscriber.complete();
            return;
          }
          subscriber.next(toMessageEvent(envelope));
        },
        whenWritable: () => {
          if (!socket || socket.writableLength < bufferBytes / 2) return undefined;
          return drained(socket);
        },
        reset: (resetTopics) =>
          subscriber.next({ id: lastEventId, type: 'pushlet:reset', data: JSON.stringify({ topics: resetTopics, reason: MESSAGES.resetUnknownId }) }),
      });
      const stopHeartbeat = this.hub.heartbeat.onTick((now) => subscriber.next({ comment: `heartbeat ${now.toISOString()}` }));
      const start = async () => {
        if (request) await this.hub.authorize(list, 'sse', request);
        const from = lastEventId ?? (await this.hub.broker.position());
        if (subscriber.closed) return;
        subscriber.next({ id: from, type: 'pushlet:connected', data: JSON.stringify({ topics: list }) });
        await feed.add([...list, BROADCAST_TOPIC], from, lastEventId !== undefined);
      };
      start().catch((error: unknown) => subscriber.error(toHttpException(error)));
      return () => {
        stopHeartbeat();
        feed.close();
        slot?.release();
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
      const feed = this.hub.createFeed({
        deliver: (envelope) => subscriber.next(envelope.message),
        reset: () => undefined,
      });
      const topicsToAdd = options.broadcasts ? [...list, BROADCAST_TOPIC] : list;
      feed.add(topicsToAdd, options.lastEventId).catch((error: unknown) => subscriber.error(error));
      return () => feed.close();
    });
  }

  /** What this instance is doing now. */
  stats(): PushletStats {
    const connections = this.hub.connections.snapshot();
    return {
      connections: { sse: connections.sse, ws: connections.ws, total: connections.total },
      topics: this.hub.registry.topicCount,
      subscribers: this.hub.registry.subscriberCount,
      published: this.hub.published,
      slowConsumersDisconnected: connections.slowConsumersDisconnected,
      heartbeatInterval: this.hub.heartbeat.interval,
    };
  }

  private async send(topic: string, event: string, data: string): Promise<PushletMessage> {
    const envelope = await this.hub.broker.publish(topic, event, data);
    this.hub.published += 1;
    return envelope.message;
  }

  private takeSlot(request: IncomingMessage) {
    try {
      return this.hub.connections.acquire('sse', request.socket.remoteAddress ?? 'unknown');
    } catch (error) {
      throw toHttpException(error);
    }
  }
}

function normaliseTopics(topics: string | readonly string[] | undefined): string[] {
  if (topics === undefined) return [DEFAULT_TOPIC];
  const list = typeof topics === 'string' ? [topics] : [...topics];
  return list.length === 0 ? [DEFAULT_TOPIC] : list;
}

function toMessageEvent(envelope: Envelope): MessageEvent {
  const { id, event, data } = envelope.message;
  return { id, type: event, data };
}

/** Maps the module's errors onto Nest's HTTP exceptions; anything else passes through. */
export function toHttpException(error: unknown): unknown {
  if (!(error instanceof PushletError)) return error;
  if (error instanceof PushletValidationError) return new BadRequestException(error.message);
  if (error instanceof PushletForbiddenError) return new ForbiddenException(error.message);
  if (error instanceof PushletLimitError) return new ServiceUnavailableException(error.message);
  return error;
}
