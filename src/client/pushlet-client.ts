import { EVENTS, RESERVED_PREFIX, type CommandRef, type ResetData, type TopicsData } from '../protocol/index.js';
import { backoffDelay } from './backoff.js';
import { CLIENT_TEXTS, PushletClientError, PushletConnectionError, PushletSubscribeError } from './client-errors.js';
import type { ClientEvents, ClientMessage, ClientState, PushletClientOptions } from './client-types.js';
import { Emitter } from './emitter.js';
import { SseTransport } from './sse-transport.js';
import { ClientSubscription, type MessageHandler, type Subscription } from './subscription.js';
import { joinUrl, type ClientFrame, type Transport, type TransportEnd } from './transport.js';
import { WsTransport, type WebSocketConstructor } from './ws-transport.js';

/** A topic the client holds: `subscribing` until the server first confirms it. */
interface TopicEntry {
  state: 'subscribing' | 'subscribed';
  readonly subscriptions: Set<ClientSubscription>;
}

/** The client's life: not started yet, running (connected or trying to be), or closed for good. */
type Phase = 'idle' | 'running' | 'offline' | 'closed';

interface GlobalEvents {
  addEventListener(name: string, listener: () => void): void;
  removeEventListener(name: string, listener: () => void): void;
}

const DEFAULTS = {
  transport: 'auto',
  wsPath: '/ws',
  ssePath: '/events',
  minReconnectDelayMs: 500,
  maxReconnectDelayMs: 30_000,
  pingIntervalMs: 25_000,
  pingTimeoutMs: 10_000,
  sseIdleTimeoutMs: 0,
} as const;

/**
 * A Pushlet client over WebSocket or Server-Sent Events. It connects on the first `subscribe()`
 * (or `connect()`), keeps the id of the last message, and after any drop reconnects with
 * full-jitter backoff and resumes every topic at once from that id: missed messages arrive once,
 * in order, or a `reset` event says which topics may have missed some.
 */
export class PushletClient {
  private readonly options: Required<Omit<PushletClientOptions, 'WebSocket' | 'token' | 'fetch'>> & PushletClientOptions;
  private readonly events = new Emitter<ClientEvents>();
  private readonly entries = new Map<string, TopicEntry>();
  /** Subscribe commands awaiting their reply (WebSocket), by `ref`. */
  private readonly pendingRefs = new Map<CommandRef, readonly string[]>();
  private phase: Phase = 'idle';
  private current: ClientState = 'disconnected';
  private kind: 'websocket' | 'sse';
  /** Which transport has carried a connection yet (`auto` keeps probing both until one has). */
  private worked: 'none' | 'websocket' | 'sse' = 'none';
  private transport: Transport | undefined;
  private lastId: string | undefined;
  private attempt = 0;
  private refs = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private topicSync: 'idle' | 'scheduled' = 'idle';
  private readonly globalEvents: GlobalEvents | undefined;
  private readonly onOffline = () => this.wentOffline();
  private readonly onOnline = () => this.cameOnline();

  /** @param baseUrl the server's origin (and global prefix, if any): `https://example.com/api`. */
  constructor(
    private readonly baseUrl: string,
    options: PushletClientOptions = {},
  ) {
    if (!/^https?:\/\//i.test(baseUrl)) throw new PushletClientError(CLIENT_TEXTS.badBaseUrl);
    this.options = { ...DEFAULTS, ...stripUndefined(options) };
    this.kind = this.options.transport === 'sse' ? 'sse' : 'websocket';
    if (this.kind === 'websocket' && !this.webSocketConstructor()) {
      if (this.options.transport === 'websocket') throw new PushletClientError(CLIENT_TEXTS.noWebSocket);
      this.kind = 'sse';
    }
    const scope = globalThis as unknown as Partial<GlobalEvents> & { navigator?: unknown };
    this.globalEvents = typeof scope.addEventListener === 'function' && scope.navigator !== undefined ? (scope as GlobalEvents) : undefined;
  }

  get state(): ClientState {
    return this.current;
  }

  /** The id the next connection resumes after (the last message's, or `pushlet:connected`'s). */
  get lastEventId(): string | undefined {
    return this.lastId;
  }

  /** The transport in use now, or the next one to try. */
  get transportKind(): 'websocket' | 'sse' {
    return this.kind;
  }

  /** Listens to `message`, `reset`, `state` or `error`; returns a function that stops listening. */
  on<K extends keyof ClientEvents & string>(name: K, listener: (value: ClientEvents[K]) => void): () => void {
    return this.events.on(name, listener);
  }

  off<K extends keyof ClientEvents & string>(name: K, listener: (value: ClientEvents[K]) => void): void {
    this.events.off(name, listener);
  }

  /** Connects now rather than on the first `subscribe()` (WebSocket then receives broadcasts). */
  connect(): void {
    this.assertOpen();
    if (this.phase !== 'idle') return;
    this.start();
  }

  /**
   * Subscribes `handler` to one topic or several. Topics already held by another subscription
   * are shared (one server subscription). Throws only on a closed client or no topic; a topic the
   * server refuses rejects `ready`.
   */
  subscribe(topics: string | readonly string[], handler: MessageHandler): Subscription {
    this.assertOpen();
    const list = [...new Set(typeof topics === 'string' ? [topics] : topics)];
    if (list.length === 0) throw new PushletClientError(CLIENT_TEXTS.noTopics);
    const subscription = new ClientSubscription(list, handler, (s) => this.release(s));
    const added: string[] = [];
    for (const topic of list) {
      let entry = this.entries.get(topic);
      if (!entry) {
        entry = { state: 'subscribing', subscriptions: new Set() };
        this.entries.set(topic, entry);
        added.push(topic);
      }
      entry.subscriptions.add(subscription);
    }
    for (const topic of list) if (this.entries.get(topic)?.state === 'subscribed') subscription.confirm(topic);
    if (added.length > 0) this.topicsAdded(added);
    return subscription;
  }

  /** Ends the connection and every timer and listener; the client cannot be used again. */
  close(): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.dropTransport();
    this.globalEvents?.removeEventListener('offline', this.onOffline);
    this.globalEvents?.removeEventListener('online', this.onOnline);
    const closed = new PushletClientError(CLIENT_TEXTS.closed);
    for (const entry of this.entries.values()) for (const s of entry.subscriptions) s.abandon(closed);
    this.entries.clear();
    this.pendingRefs.clear();
    this.setState('disconnected');
    this.events.clear();
  }

  private start(): void {
    this.phase = 'running';
    this.globalEvents?.addEventListener('offline', this.onOffline);
    this.globalEvents?.addEventListener('online', this.onOnline);
    // Started offline: wait for `online` (no `offline` event will come to say so).
    if (this.globalEvents && (globalThis as { navigator?: { onLine?: boolean } }).navigator?.onLine === false) return this.wentOffline();
    void this.open();
  }

  /** One connection attempt with every topic held and the last id. */
  private async open(): Promise<void> {
    if (this.phase !== 'running' || this.transport) return;
    if (this.kind === 'sse' && this.entries.size === 0) {
      // An SSE stream without topics would subscribe to `default`: wait for a topic instead.
      this.setState('disconnected');
      return;
    }
    this.setState('connecting');
    const placeholder: Transport = { kind: this.kind, topics: new Set(), send: () => false, close: () => undefined };
    this.transport = placeholder;
    let token: string | undefined;
    try {
      // Awaited even without a token function: the subscriptions of this tick join the first connection.
      token = await (typeof this.options.token === 'function' ? this.options.token() : this.options.token);
    } catch (error) {
      if (this.transport !== placeholder) return;
      this.transport = undefined;
      this.events.emit('error', new PushletConnectionError(`the token function failed: ${String(error)}`));
      this.scheduleReconnect();
      return;
    }
    if (this.transport !== placeholder || this.phase !== 'running') return;
    const request = { topics: [...this.entries.keys()], lastEventId: this.lastId, token };
    let transport: Transport;
    const handlers = {
      frame: (frame: ClientFrame) => this.transport === transport && this.receive(transport, frame),
      ended: (end: TransportEnd) => this.transport === transport && this.ended(transport, end),
    };
    this.pendingRefs.clear();
    transport =
      this.kind === 'websocket'
        ? new WsTransport(
            {
              url: webSocketUrl(this.baseUrl, this.options.wsPath),
              WebSocket: this.webSocketConstructor()!,
              pingIntervalMs: this.options.pingIntervalMs,
              pingTimeoutMs: this.options.pingTimeoutMs,
            },
            request,
            handlers,
          )
        : new SseTransport(
            { url: joinUrl(this.baseUrl, this.options.ssePath), fetch: this.options.fetch ?? fetch, idleTimeoutMs: this.options.sseIdleTimeoutMs },
            request,
            handlers,
          );
    this.transport = transport;
  }

  private receive(transport: Transport, frame: ClientFrame): void {
    switch (frame.event) {
      case EVENTS.connected:
        return this.connected(transport, frame);
      case EVENTS.subscribed:
        if (frame.ref !== undefined) this.pendingRefs.delete(frame.ref);
        return this.confirm(topicsOf(frame.data));
      case EVENTS.error:
        return this.serverError(frame);
      case EVENTS.reset:
        return this.events.emit('reset', resetOf(frame.data));
      default:
        if (!frame.event.startsWith(RESERVED_PREFIX)) this.message(transport, frame);
    }
  }

  private connected(transport: Transport, frame: ClientFrame): void {
    if (frame.id !== undefined) this.lastId = frame.id;
    this.attempt = 0;
    if (this.worked === 'none') this.worked = transport.kind;
    this.setState('connected');
    this.confirm(topicsOf(frame.data));
    this.syncTopics();
  }

  private message(transport: Transport, frame: ClientFrame): void {
    if (frame.id !== undefined) this.lastId = frame.id;
    const message: ClientMessage = {
      id: frame.id ?? '',
      topic: frame.topic,
      event: frame.event,
      data: typeof frame.data === 'string' ? frame.data : JSON.stringify(frame.data),
      timestamp: frame.timestamp,
    };
    this.events.emit('message', message);
    for (const subscription of this.handlersFor(transport, message)) {
      try {
        subscription.handler(message);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  /** The subscriptions of the message's topic (an old server's SSE frames name none: every subscription of the stream). */
  private handlersFor(transport: Transport, message: ClientMessage): Set<ClientSubscription> {
    const out = new Set<ClientSubscription>();
    const topics = message.topic !== undefined ? [message.topic] : transport.topics;
    for (const topic of topics) for (const s of this.entries.get(topic)?.subscriptions ?? []) out.add(s);
    return out;
  }

  private confirm(topics: readonly string[]): void {
    for (const topic of topics) {
      const entry = this.entries.get(topic);
      if (!entry) continue;
      entry.state = 'subscribed';
      for (const s of [...entry.subscriptions]) s.confirm(topic);
    }
  }

  /** `pushlet:error`: a refused topic ends its subscriptions; anything else is reported. */
  private serverError(frame: ClientFrame): void {
    const refTopics = frame.ref !== undefined ? this.pendingRefs.get(frame.ref) : undefined;
    const topics = frame.topic !== undefined ? [frame.topic] : (refTopics ?? []);
    if (frame.ref !== undefined && frame.topic === undefined) this.pendingRefs.delete(frame.ref);
    if (topics.length === 0) {
      this.events.emit('error', new PushletClientError(`the server answered an error: ${frame.data}`));
      return;
    }
    for (const topic of topics) this.refuse(topic, frame.data);
  }

  private refuse(topic: string, reason: string): void {
    const entry = this.entries.get(topic);
    if (!entry) return;
    this.entries.delete(topic);
    // A topic refused after it was confirmed (on a reconnect) has no `ready` left to reject: say so.
    if (entry.state === 'subscribed') this.events.emit('error', new PushletSubscribeError(topic, reason));
    for (const s of [...entry.subscriptions]) s.refuse(topic, reason);
  }

  private ended(transport: Transport, end: TransportEnd): void {
    this.transport = undefined;
    this.pendingRefs.clear();
    if (this.phase !== 'running') return;
    if (this.shouldFallBack(transport, end)) {
      this.kind = 'sse';
      void this.open();
      return;
    }
    if (this.options.transport === 'auto' && this.worked === 'none' && unreached(end)) {
      // Neither transport has got through yet (the server may be down): try WebSocket first again.
      this.kind = 'websocket';
    }
    if (end.kind === 'refused' && (end.status === 400 || end.status === 403)) {
      // SSE admits a request's topics all or none: the topics not yet confirmed are the refused ones.
      const unconfirmed = [...transport.topics].filter((topic) => this.entries.get(topic)?.state === 'subscribing');
      if (unconfirmed.length > 0) {
        for (const topic of unconfirmed) this.refuse(topic, end.message);
        void this.open();
        return;
      }
    }
    this.events.emit('error', endError(end));
    const serverDelay = end.kind === 'ended' ? end.retryMs : end.kind === 'refused' ? end.retryAfterMs : undefined;
    this.scheduleReconnect(serverDelay);
  }

  /** `auto`: a WebSocket that did not get through, before any transport has, hands over to SSE. */
  private shouldFallBack(transport: Transport, end: TransportEnd): boolean {
    return (
      this.options.transport === 'auto' && transport.kind === 'websocket' && this.worked === 'none' && unreached(end)
    );
  }

  private scheduleReconnect(atLeastMs = 0): void {
    if (this.phase !== 'running') return;
    const delay = Math.max(atLeastMs, backoffDelay(this.attempt++, this.options.minReconnectDelayMs, this.options.maxReconnectDelayMs));
    this.setState('connecting');
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.open();
    }, delay);
  }

  private topicsAdded(added: readonly string[]): void {
    if (this.phase === 'idle') return this.start();
    if (this.phase !== 'running') return;
    if (!this.transport && !this.reconnectTimer) return void this.open();
    this.syncTopics(added);
  }

  /**
   * Brings the open connection's topics in line with the client's. WebSocket: one `subscribe`
   * (or `unsubscribe`) command; SSE: a new stream with the new list and the last id, once per tick.
   */
  private syncTopics(added?: readonly string[]): void {
    const transport = this.transport;
    if (!transport || this.current !== 'connected') return;
    if (transport.kind === 'sse') return this.scheduleSseSync();
    const missing = added ?? [...this.entries.keys()].filter((topic) => !transport.topics.has(topic));
    const extra = [...transport.topics].filter((topic) => !this.entries.has(topic));
    if (missing.length > 0) {
      const ref = ++this.refs;
      this.pendingRefs.set(ref, missing);
      for (const topic of missing) (transport.topics as Set<string>).add(topic);
      transport.send({ action: 'subscribe', topics: missing, ref });
    }
    if (extra.length > 0) this.leave(transport, extra);
  }

  private leave(transport: Transport, topics: readonly string[]): void {
    for (const topic of topics) (transport.topics as Set<string>).delete(topic);
    transport.send({ action: 'unsubscribe', topics, ref: ++this.refs });
  }

  private scheduleSseSync(): void {
    if (this.topicSync === 'scheduled') return;
    this.topicSync = 'scheduled';
    queueMicrotask(() => {
      this.topicSync = 'idle';
      const transport = this.transport;
      if (!transport || transport.kind !== 'sse' || this.phase !== 'running') return;
      const same = transport.topics.size === this.entries.size && [...transport.topics].every((topic) => this.entries.has(topic));
      if (same) return;
      this.dropTransport();
      void this.open();
    });
  }

  private release(subscription: ClientSubscription): void {
    const removed: string[] = [];
    for (const topic of subscription.topics) {
      const entry = this.entries.get(topic);
      if (!entry?.subscriptions.delete(subscription) || entry.subscriptions.size > 0) continue;
      this.entries.delete(topic);
      removed.push(topic);
    }
    if (removed.length === 0 || this.phase !== 'running') return;
    const transport = this.transport;
    if (transport?.kind === 'websocket' && this.current === 'connected') {
      const held = removed.filter((topic) => transport.topics.has(topic));
      if (held.length > 0) this.leave(transport, held);
    } else if (transport?.kind === 'sse' && this.current === 'connected') {
      this.scheduleSseSync();
    }
  }

  private wentOffline(): void {
    if (this.phase !== 'running') return;
    this.phase = 'offline';
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.dropTransport();
    this.setState('disconnected');
  }

  private cameOnline(): void {
    if (this.phase !== 'offline') return;
    this.phase = 'running';
    this.attempt = 0;
    void this.open();
  }

  private dropTransport(): void {
    const transport = this.transport;
    this.transport = undefined;
    transport?.close();
  }

  private setState(state: ClientState): void {
    if (this.current === state) return;
    this.current = state;
    this.events.emit('state', state);
  }

  private webSocketConstructor(): WebSocketConstructor | undefined {
    return this.options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  }

  private assertOpen(): void {
    if (this.phase === 'closed') throw new PushletClientError(CLIENT_TEXTS.closed);
  }
}

/** The connection never got through (refused, unreachable, failed upgrade). */
function unreached(end: TransportEnd): boolean {
  return end.kind === 'dropped' && !end.opened;
}

function webSocketUrl(base: string, path: string): URL {
  const url = joinUrl(base, path);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url;
}

function topicsOf(data: string): string[] {
  try {
    const value = JSON.parse(data) as Partial<TopicsData>;
    return Array.isArray(value.topics) ? value.topics.filter((t): t is string => typeof t === 'string') : [];
  } catch {
    return [];
  }
}

function resetOf(data: string): ResetData {
  try {
    const value = JSON.parse(data) as Partial<ResetData>;
    return { topics: Array.isArray(value.topics) ? value.topics : [], reason: typeof value.reason === 'string' ? value.reason : '' };
  } catch {
    return { topics: [], reason: data };
  }
}

function endError(end: TransportEnd): PushletConnectionError {
  switch (end.kind) {
    case 'refused':
      return new PushletConnectionError(`the server refused the connection: ${end.status} ${end.message}`, end.status);
    case 'ended':
      return new PushletConnectionError(`the server ended the connection${end.code ? ` (${end.code})` : ''}; reconnecting`);
    default:
      return new PushletConnectionError(`the connection dropped: ${end.detail}; reconnecting`);
  }
}

function stripUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
