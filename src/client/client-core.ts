import type { CommandRef, ResetData, TopicsData } from '../protocol/index.js';
import { CLOSE_DISCONNECTED, CONNECTED, DISCONNECTED, ERROR, JOIN, LEAVE, RESERVED, RESET, SUBSCRIBED } from './wire.js';
import { backoffDelay } from './backoff.js';
import {
  PushletClientError,
  PushletConnectionError,
  PushletSubscribeError,
  TEXT_BAD_BASE_URL,
  TEXT_CLOSED,
  TEXT_NO_TOPICS,
  TEXT_NO_WEBSOCKET,
} from './client-errors.js';
import type { ClientEvents, ClientMessage, ClientState, PushletClientOptions, SubscribeOptions } from './client-types.js';
import { openEventStream } from './sse-transport.js';
import { createSubscription, type ClientSubscription, type MessageHandler, type Subscription } from './subscription.js';
import { endpointUrl, type ClientFrame, type Transport, type TransportEnd } from './transport.js';
import { openWebSocket, webSocketConstructor } from './ws-transport.js';

/** A topic the client holds: `subscribing` until the server first confirms it. */
interface TopicEntry {
  state: 'subscribing' | 'subscribed';
  readonly subscriptions: Set<ClientSubscription>;
  /** A rewind asked when the topic was first subscribed, until it is sent (0: none). */
  rewind: number;
}

/**
 * The client's life: not started yet, running (connected or trying to be), offline, disconnected by
 * the server (until `connect()`), or closed for good.
 */
type Phase = 'idle' | 'running' | 'offline' | 'stopped' | 'closed';

type Listeners = { [K in keyof ClientEvents]?: Set<(value: never) => void> };

interface GlobalEvents {
  addEventListener(name: string, listener: () => void): void;
  removeEventListener(name: string, listener: () => void): void;
}

/**
 * The core Pushlet client (`pushlet-client-core.js`), over WebSocket or Server-Sent Events; the
 * full client (`pushlet-client.js`, `pushlet-nestjs/client`) adds `publish`, `presence` and
 * `refresh` on top of it (docs/client.md, "Core and full builds"). It connects on the first `subscribe()`
 * (or `connect()`), keeps the id of the last message, and after any drop reconnects with
 * full-jitter backoff and resumes every topic at once from that id: missed messages arrive once,
 * in order, or a `reset` event says which topics may have missed some.
 */
export class PushletClient {
  readonly #baseUrl: string;
  /** @internal The options (the full client's `refresh` may replace the token). */
  protected readonly _options: PushletClientOptions;
  /** `auto` keeps probing both transports until one has carried a connection. */
  readonly #auto: boolean;
  #listeners: Listeners = {};
  readonly #entries = new Map<string, TopicEntry>();
  /** Subscribe commands awaiting their reply (WebSocket), by `ref`. */
  readonly #pendingRefs = new Map<CommandRef, readonly string[]>();
  #phase: Phase = 'idle';
  #state: ClientState = 'disconnected';
  #kind: 'websocket' | 'sse';
  /** Which transport has carried a connection yet. */
  #worked: 'none' | 'websocket' | 'sse' = 'none';
  #transport: Transport | undefined;
  #lastId: string | undefined;
  /** Topics whose reset `pushlet:connected` told already: the `pushlet:reset` frames after it are not told twice. */
  #toldResets = new Set<string>();
  #attempt = 0;
  #refs = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #sseSync: 'idle' | 'scheduled' = 'idle';
  readonly #globalEvents: GlobalEvents | undefined;
  /** Browser `offline`: the connection is closed, and no retries until `online`. */
  readonly #onOffline = (): void => {
    if (this.#phase !== 'running') return;
    this.#phase = 'offline';
    this.#stop();
    this.#setState('disconnected');
  };
  /** Browser `online`: connect at once. */
  readonly #onOnline = (): void => {
    if (this.#phase !== 'offline') return;
    this.#phase = 'running';
    this.#attempt = 0;
    void this.#open();
  };

  /** @param baseUrl the server's origin (and global prefix, if any): `https://example.com/api`. */
  constructor(baseUrl: string, options: PushletClientOptions = {}) {
    if (!/^https?:\/\//i.test(baseUrl)) throw new PushletClientError(TEXT_BAD_BASE_URL);
    this.#baseUrl = baseUrl;
    this._options = { ...options };
    const transport = options.transport ?? 'auto';
    this.#auto = transport === 'auto';
    this.#kind = transport === 'sse' ? 'sse' : 'websocket';
    if (this.#kind === 'websocket' && !webSocketConstructor(options)) {
      if (transport === 'websocket') throw new PushletClientError(TEXT_NO_WEBSOCKET);
      this.#kind = 'sse';
    }
    const scope = globalThis as unknown as Partial<GlobalEvents> & { navigator?: unknown };
    this.#globalEvents = typeof scope.addEventListener === 'function' && scope.navigator !== undefined ? (scope as GlobalEvents) : undefined;
  }

  get state(): ClientState {
    return this.#state;
  }

  /** The id the next connection resumes after (the last message's, or `pushlet:connected`'s). */
  get lastEventId(): string | undefined {
    return this.#lastId;
  }

  /** The transport in use now, or the next one to try. */
  get transportKind(): 'websocket' | 'sse' {
    return this.#kind;
  }

  /** Listens to `message`, `reset`, `state` or `error`; returns a function that stops listening. */
  on<K extends keyof ClientEvents & string>(name: K, listener: (value: ClientEvents[K]) => void): () => void {
    (this.#listeners[name] ??= new Set()).add(listener);
    return () => this.off(name, listener);
  }

  off<K extends keyof ClientEvents & string>(name: K, listener: (value: ClientEvents[K]) => void): void {
    this.#listeners[name]?.delete(listener);
  }

  /**
   * Connects now rather than on the first `subscribe()` (WebSocket then receives broadcasts); after
   * the server disconnected the client (close 4002, `pushlet:disconnected`), connects again.
   */
  connect(): void {
    this.#assertOpen();
    if (this.#phase === 'idle' || this.#phase === 'stopped') {
      this.#attempt = 0;
      this.#start();
    }
  }

  /**
   * @internal For the full client: sends a command over the open WebSocket; false when there is
   * none (not connected, or SSE). Throws on a closed client, and on data JSON cannot carry.
   */
  protected _send(command: Record<string, unknown>): boolean {
    this.#assertOpen();
    const transport = this.#transport;
    return transport?.kind === 'websocket' && this.#state === 'connected' && transport.send(command);
  }

  /** @internal For the full client: a frame with a `ref`, offered first; true when it was the reply to its command. */
  protected _reply(_frame: ClientFrame): boolean {
    return false;
  }

  /** @internal For the full client: the connection is gone (`closed`: for good), commands waiting fail. */
  protected _dropped(_closed: boolean): void {}

  /**
   * Subscribes `handler` to one topic or several. Topics already held by another subscription
   * are shared (one server subscription). Throws only on a closed client or no topic; a topic the
   * server refuses rejects `ready`.
   */
  subscribe(topics: string | readonly string[], handler: MessageHandler, options: SubscribeOptions = {}): Subscription {
    this.#assertOpen();
    const list = [...new Set(typeof topics === 'string' ? [topics] : topics)];
    if (list.length === 0) throw new PushletClientError(TEXT_NO_TOPICS);
    const subscription = createSubscription(list, handler, (s) => this.#release(s));
    const added: string[] = [];
    for (const topic of list) {
      let entry = this.#entries.get(topic);
      if (!entry) {
        this.#entries.set(topic, (entry = { state: 'subscribing', subscriptions: new Set(), rewind: options.rewind || 0 }));
        added.push(topic);
      }
      entry.subscriptions.add(subscription);
      if (entry.state === 'subscribed') subscription.confirm(topic);
    }
    if (added.length === 0) return subscription;
    if (this.#phase === 'idle') this.#start();
    // Not connecting (SSE waits for a topic, or offline): `#open` knows whether to start now.
    else if (!this.#transport && !this.#reconnectTimer) void this.#open();
    else this.#syncTopics(added);
    return subscription;
  }

  /** Ends the connection and every timer and listener; the client cannot be used again. */
  close(): void {
    if (this.#phase === 'closed') return;
    this.#phase = 'closed';
    this.#stop();
    this.#network('removeEventListener');
    const closed = new PushletClientError(TEXT_CLOSED);
    for (const entry of this.#entries.values()) for (const s of entry.subscriptions) s.abandon(closed);
    this.#entries.clear();
    this.#pendingRefs.clear();
    this.#setState('disconnected');
    this.#listeners = {};
  }

  #emit<K extends keyof ClientEvents>(name: K, value: ClientEvents[K]): void {
    for (const listener of [...(this.#listeners[name] ?? [])]) callSafely(listener, value as never);
  }

  #start(): void {
    this.#phase = 'running';
    this.#network('addEventListener');
    // Started offline: wait for `online` (no `offline` event will come to say so).
    if (this.#globalEvents && (globalThis as { navigator?: { onLine?: boolean } }).navigator?.onLine === false) return this.#onOffline();
    void this.#open();
  }

  #network(method: keyof GlobalEvents): void {
    this.#globalEvents?.[method]('offline', this.#onOffline);
    this.#globalEvents?.[method]('online', this.#onOnline);
  }

  /** One connection attempt with every topic held and the last id. */
  async #open(): Promise<void> {
    if (this.#phase !== 'running' || this.#transport) return;
    const kind = this.#kind;
    if (kind === 'sse' && this.#entries.size === 0) {
      // An SSE stream without topics would subscribe to `default`: wait for a topic instead.
      this.#setState('disconnected');
      return;
    }
    this.#setState('connecting');
    const placeholder: Transport = { kind, topics: new Set(), send: () => false, heartbeat: () => undefined, close: () => undefined };
    this.#transport = placeholder;
    const options = this._options;
    let token: string | undefined;
    try {
      // Awaited even without a token function: the subscriptions of this tick join the first connection.
      token = await (typeof options.token === 'function' ? options.token() : options.token);
    } catch (error) {
      if (this.#transport !== placeholder) return;
      this.#transport = undefined;
      this.#emit('error', new PushletConnectionError(`the token function failed: ${String(error)}`));
      this.#scheduleReconnect();
      return;
    }
    // Closed, offline or restarted meanwhile: the placeholder was dropped.
    if (this.#transport !== placeholder) return;
    const topics = [...this.#entries.keys()];
    const websocket = kind === 'websocket';
    const path = websocket ? (options.wsPath ?? '/ws') : (options.ssePath ?? '/events');
    const request = { url: endpointUrl(this.#baseUrl, path, topics), topics, lastEventId: this.#lastId, token };
    // A rewind counts only on a connection without an id (the server ignores it otherwise): one per URL, the largest asked.
    let rewind = 0;
    for (const entry of this.#entries.values()) rewind = Math.max(rewind, entry.rewind);
    if (rewind && !this.#lastId) request.url.searchParams.set('rewind', '' + rewind);
    this.#pendingRefs.clear();
    const transport: Transport = (websocket ? openWebSocket : openEventStream)(request, options, {
      frame: (frame) => this.#transport === transport && this.#receive(transport, frame),
      ended: (end) => this.#transport === transport && this.#ended(transport, end),
    });
    this.#transport = transport;
  }

  #receive(transport: Transport, frame: ClientFrame): void {
    if (frame.ref !== undefined && this._reply(frame)) return;
    switch (frame.event) {
      case CONNECTED: {
        const data = topicsData(frame.data);
        // The gap is told before the id that skips it is kept (docs/protocol.md, "Resume").
        this.#toldResets = new Set(data.reset?.topics);
        if (data.reset) this.#emit('reset', data.reset);
        if (data.heartbeat) transport.heartbeat(data.heartbeat);
        if (frame.id !== undefined) this.#lastId = frame.id;
        this.#attempt = 0;
        if (this.#worked === 'none') this.#worked = transport.kind;
        this.#setState('connected');
        this.#confirm(data.topics);
        return this.#syncTopics();
      }
      case SUBSCRIBED:
        if (frame.ref !== undefined) this.#pendingRefs.delete(frame.ref);
        return this.#confirm(topicsData(frame.data).topics);
      case ERROR:
        return this.#serverError(frame);
      case RESET: {
        const reset = resetOf(frame.data);
        const told = this.#toldResets;
        if (reset.topics.length > 0 && reset.topics.every((topic) => told.delete(topic))) return;
        return this.#emit('reset', reset);
      }
      case DISCONNECTED:
        return this.#serverDisconnected(frame.data);
      // Presence: messages of the topic itself, for its subscriptions.
      case JOIN:
      case LEAVE:
        return this.#message(transport, frame);
      default:
        if (!frame.event.startsWith(RESERVED)) this.#message(transport, frame);
    }
  }

  #message(transport: Transport, frame: ClientFrame): void {
    if (frame.id !== undefined) this.#lastId = frame.id;
    const message: ClientMessage = {
      id: frame.id ?? '',
      topic: frame.topic,
      event: frame.event,
      data: typeof frame.data === 'string' ? frame.data : JSON.stringify(frame.data),
      timestamp: frame.timestamp,
    };
    this.#emit('message', message);
    // The subscriptions of the message's topic (an old server's SSE frames name none: every subscription of the stream).
    const handlers = new Set<ClientSubscription>();
    for (const topic of message.topic !== undefined ? [message.topic] : transport.topics) {
      for (const s of this.#entries.get(topic)?.subscriptions ?? []) handlers.add(s);
    }
    for (const s of handlers) callSafely(s.handler, message);
  }

  #confirm(topics: readonly string[]): void {
    for (const topic of topics) {
      const entry = this.#entries.get(topic);
      if (!entry) continue;
      entry.state = 'subscribed';
      for (const s of [...entry.subscriptions]) s.confirm(topic);
    }
  }

  /** `pushlet:error`: a refused topic ends its subscriptions; anything else is reported. */
  #serverError(frame: ClientFrame): void {
    const refTopics = frame.ref !== undefined ? this.#pendingRefs.get(frame.ref) : undefined;
    const topics = frame.topic !== undefined ? [frame.topic] : (refTopics ?? []);
    if (frame.ref !== undefined && frame.topic === undefined) this.#pendingRefs.delete(frame.ref);
    if (topics.length === 0) return this.#emit('error', new PushletClientError(`the server answered an error: ${frame.data}`));
    for (const topic of topics) this.#refuse(topic, frame.data);
  }

  #refuse(topic: string, reason: string): void {
    const entry = this.#entries.get(topic);
    if (!entry) return;
    this.#entries.delete(topic);
    // A topic refused after it was confirmed (on a reconnect) has no `ready` left to reject: say so.
    if (entry.state === 'subscribed') this.#emit('error', new PushletSubscribeError(topic, reason));
    for (const s of [...entry.subscriptions]) s.refuse(topic, reason);
  }

  #ended(transport: Transport, end: TransportEnd): void {
    this.#transport = undefined;
    this.#pendingRefs.clear();
    this._dropped(this.#phase === 'closed');
    if (this.#phase !== 'running') return;
    // Disconnected by the server (the `pushlet:disconnected` notice did not arrive first).
    if (end.kind !== 'refused' && end.code === CLOSE_DISCONNECTED) return this.#serverDisconnected(end.kind === 'dropped' ? end.detail : '');
    // The connection never got through (refused, unreachable, failed upgrade) and no transport has yet.
    const unreached = this.#auto && this.#worked === 'none' && end.kind === 'dropped' && !end.opened;
    if (unreached && transport.kind === 'websocket') {
      // `auto`: hand over to SSE.
      this.#kind = 'sse';
      void this.#open();
      return;
    }
    // Neither transport has got through yet (the server may be down): try WebSocket first again.
    if (unreached) this.#kind = 'websocket';
    if (end.kind === 'refused' && (end.status === 400 || end.status === 403)) {
      // SSE admits a request's topics all or none: the topics not yet confirmed are the refused ones.
      const unconfirmed = [...transport.topics].filter((topic) => this.#entries.get(topic)?.state === 'subscribing');
      if (unconfirmed.length > 0) {
        for (const topic of unconfirmed) this.#refuse(topic, end.message);
        void this.#open();
        return;
      }
    }
    // `auto`: a WebSocket upgrade refused for want of a valid token looks like a failed upgrade
    // (browsers hide its status); SSE's 401 says what it was: try WebSocket again with the next token.
    if (this.#auto && this.#worked === 'none' && end.kind === 'refused' && end.status === 401) this.#kind = 'websocket';
    this.#emit('error', endError(end));
    this.#scheduleReconnect(end.kind === 'ended' ? end.retryMs : end.kind === 'refused' ? end.retryAfterMs : undefined);
  }

  #scheduleReconnect(atLeastMs = 0): void {
    if (this.#phase !== 'running') return;
    const delay = backoffDelay(this.#attempt++, this._options.minReconnectDelayMs ?? 500, this._options.maxReconnectDelayMs ?? 30_000);
    this.#setState('connecting');
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(
      () => {
        this.#reconnectTimer = undefined;
        void this.#open();
      },
      Math.max(atLeastMs, delay),
    );
  }

  /**
   * Brings the open connection's topics in line with the client's. WebSocket: one `subscribe`
   * (or `unsubscribe`) command; SSE: a new stream with the new list and the last id, once per tick.
   */
  #syncTopics(added?: readonly string[]): void {
    const transport = this.#transport;
    if (!transport || this.#state !== 'connected') return;
    if (transport.kind === 'sse') return this.#scheduleSseSync();
    const missing = added ?? [...this.#entries.keys()].filter((topic) => !transport.topics.has(topic));
    const extra = [...transport.topics].filter((topic) => !this.#entries.has(topic));
    // One command per rewind asked (a `subscribe` without an id is rewound).
    const groups = new Map<number, string[]>();
    for (const topic of missing) {
      const entry = this.#entries.get(topic)!;
      groups.set(entry.rewind, [...(groups.get(entry.rewind) ?? []), topic]);
      entry.rewind = 0;
    }
    for (const [rewind, topics] of groups) {
      const ref = ++this.#refs;
      this.#pendingRefs.set(ref, topics);
      for (const topic of topics) transport.topics.add(topic);
      transport.send({ action: 'subscribe', topics, ref, rewind });
    }
    if (extra.length > 0) this.#leave(transport, extra);
  }

  #leave(transport: Transport, topics: readonly string[]): void {
    for (const topic of topics) transport.topics.delete(topic);
    transport.send({ action: 'unsubscribe', topics, ref: ++this.#refs });
  }

  #scheduleSseSync(): void {
    if (this.#sseSync === 'scheduled') return;
    this.#sseSync = 'scheduled';
    queueMicrotask(() => {
      this.#sseSync = 'idle';
      const transport = this.#transport;
      if (!transport || transport.kind !== 'sse' || this.#phase !== 'running') return;
      const same = transport.topics.size === this.#entries.size && [...transport.topics].every((topic) => this.#entries.has(topic));
      if (same) return;
      this.#dropTransport();
      void this.#open();
    });
  }

  #release(subscription: ClientSubscription): void {
    const removed: string[] = [];
    for (const topic of subscription.topics) {
      const entry = this.#entries.get(topic);
      if (!entry?.subscriptions.delete(subscription) || entry.subscriptions.size > 0) continue;
      this.#entries.delete(topic);
      removed.push(topic);
    }
    const transport = this.#transport;
    if (removed.length === 0 || this.#phase !== 'running' || !transport || this.#state !== 'connected') return;
    if (transport.kind === 'sse') return this.#scheduleSseSync();
    const held = removed.filter((topic) => transport.topics.has(topic));
    if (held.length > 0) this.#leave(transport, held);
  }

  /** Cancels the pending reconnect and ends the connection. */
  #stop(): void {
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#dropTransport();
  }

  #dropTransport(): void {
    const transport = this.#transport;
    this.#transport = undefined;
    transport?.close();
    this._dropped(this.#phase === 'closed');
  }

  /**
   * The server disconnected this client (`PushletService.disconnect`): no reconnect, since it
   * would only be disconnected again; `connect()` tries again when the app decides to.
   */
  #serverDisconnected(reason: string): void {
    if (this.#phase !== 'running') return;
    this.#phase = 'stopped';
    this.#stop();
    this.#network('removeEventListener');
    this.#setState('disconnected');
    this.#emit('error', new PushletConnectionError(`the server disconnected this client: ${reason}`, undefined, CLOSE_DISCONNECTED));
  }

  #setState(state: ClientState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#emit('state', state);
  }

  #assertOpen(): void {
    if (this.#phase === 'closed') throw new PushletClientError(TEXT_CLOSED);
  }
}

/** Calls a listener or handler; one that throws does not stop the others, and its error is thrown again asynchronously. */
function callSafely<T>(listener: (value: T) => void, value: T): void {
  try {
    listener(value);
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}

function parseJson(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return undefined;
  }
}

function topicsData(data: string): { topics: string[]; reset?: ResetData; heartbeat?: number } {
  const value = parseJson(data) as Partial<TopicsData> | null | undefined;
  const topics = strings(value?.topics);
  const reset = value?.reset;
  const heartbeat = typeof value?.heartbeat === 'number' && value.heartbeat > 0 ? value.heartbeat : undefined;
  return reset && typeof reset === 'object'
    ? { topics, reset: { topics: strings(reset.topics), reason: String(reset.reason ?? '') }, heartbeat }
    : { topics, heartbeat };
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((t): t is string => typeof t === 'string') : [];
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
      return new PushletConnectionError(`the server ended the connection${end.code ? ` (${end.code})` : ''}; reconnecting`, undefined, end.code);
    default:
      return new PushletConnectionError(`the connection dropped: ${end.detail}; reconnecting`, undefined, end.code);
  }
}
