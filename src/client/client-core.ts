import type { CommandRef, ResetData } from '../protocol/index.js';
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

/** Stands for the connection while the token is awaited: nothing to send, nothing to close. */
const ignore = (): false => false;

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
  /** `auto` until a transport has carried a connection: both transports are probed. */
  #probing: boolean;
  #listeners: Listeners = {};
  /** The topics the client holds, with their subscriptions. */
  readonly #entries = new Map<string, Set<ClientSubscription>>();
  /** The rewind asked when a topic was first subscribed, until it is sent. */
  readonly #rewinds = new Map<string, number>();
  /** The held topics the server has confirmed (once; the others are still subscribing). */
  readonly #confirmed = new Set<string>();
  /** Subscribe commands awaiting their reply (WebSocket), by `ref`. */
  readonly #pendingRefs = new Map<CommandRef, readonly string[]>();
  #phase: Phase = 'idle';
  #state: ClientState = 'disconnected';
  #kind: 'websocket' | 'sse';
  #transport: Transport | undefined;
  #lastId: string | undefined;
  /** Topics whose reset `pushlet:connected` told already: the `pushlet:reset` frames after it are not told twice. */
  #toldResets = new Set<string>();
  #attempt = 0;
  #refs = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
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
    this.#probing = transport === 'auto';
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
    return this.#state === 'connected' && !!this.#transport?.send(command);
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
    let added = false;
    for (const topic of list) {
      let subscriptions = this.#entries.get(topic);
      if (!subscriptions) {
        this.#entries.set(topic, (subscriptions = new Set()));
        if (options.rewind) this.#rewinds.set(topic, options.rewind);
        added = true;
      }
      subscriptions.add(subscription);
      if (this.#confirmed.has(topic)) subscription.confirm(topic);
    }
    if (!added) return subscription;
    if (this.#phase === 'idle') this.#start();
    // Not connecting (SSE waits for a topic, or offline): `#open` knows whether to start now.
    else if (!this.#transport && !this.#reconnectTimer) void this.#open();
    else this.#sync();
    return subscription;
  }

  /** Ends the connection and every timer and listener; the client cannot be used again. */
  close(): void {
    if (this.#phase === 'closed') return;
    this.#phase = 'closed';
    this.#stop();
    this.#network('removeEventListener');
    const closed = new PushletClientError(TEXT_CLOSED);
    for (const subscriptions of this.#entries.values()) for (const s of subscriptions) s.abandon(closed);
    this.#entries.clear();
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
    // An SSE stream without topics would subscribe to `default`: wait for a topic instead.
    if (kind === 'sse' && this.#entries.size === 0) return this.#setState('disconnected');
    this.#setState('connecting');
    const placeholder: Transport = { kind, topics: new Set(), send: ignore, heartbeat: ignore, close: ignore };
    this.#transport = placeholder;
    const options = this._options;
    let token: string | undefined;
    try {
      // Awaited even without a token function: the subscriptions of this tick join the first connection.
      token = await (typeof options.token === 'function' ? options.token() : options.token);
    } catch (error) {
      if (this.#transport !== placeholder) return;
      this.#transport = undefined;
      return this.#retry(new PushletConnectionError(`token function failed: ${error}`));
    }
    // Closed, offline or restarted meanwhile: the placeholder was dropped.
    if (this.#transport !== placeholder) return;
    const topics = [...this.#entries.keys()];
    const websocket = kind === 'websocket';
    const path = websocket ? (options.wsPath ?? '/ws') : (options.ssePath ?? '/events');
    const request = { url: endpointUrl(this.#baseUrl, path, topics), topics, lastEventId: this.#lastId, token };
    // A rewind counts only on a connection without an id (the server ignores it otherwise): one per URL, the largest asked.
    const rewind = Math.max(0, ...this.#rewinds.values());
    if (rewind && !this.#lastId) request.url.searchParams.set('rewind', '' + rewind);
    this.#rewinds.clear();
    this.#pendingRefs.clear();
    const transport: Transport = (websocket ? openWebSocket : openEventStream)(request, options, {
      frame: (frame) => this.#transport === transport && this.#receive(transport, frame),
      ended: (end) => this.#transport === transport && this.#ended(transport, end),
    });
    this.#transport = transport;
  }

  #receive(transport: Transport, frame: ClientFrame): void {
    const { event, data, id, ref } = frame;
    if (ref !== undefined && this._reply(frame)) return;
    switch (event) {
      case CONNECTED: {
        const value = parseObject(data);
        const reset = value?.reset ? resetData(Object(value.reset)) : undefined;
        // The gap is told before the id that skips it is kept (docs/protocol.md, "Resume").
        this.#toldResets = new Set(reset?.topics);
        if (reset) this.#emit('reset', reset);
        const heartbeat = value?.heartbeat;
        if (typeof heartbeat === 'number' && heartbeat > 0) transport.heartbeat(heartbeat);
        if (id !== undefined) this.#lastId = id;
        this.#attempt = 0;
        this.#probing = false;
        this.#setState('connected');
        this.#confirm(value?.topics);
        return this.#sync();
      }
      case SUBSCRIBED:
        this.#pendingRefs.delete(ref!);
        return this.#confirm(parseObject(data)?.topics);
      case ERROR: {
        // A refused topic ends its subscriptions (named by the frame, or by its subscribe command); anything else is reported.
        const refused = frame.topic !== undefined ? [frame.topic] : this.#pendingRefs.get(ref!);
        if (frame.topic === undefined) this.#pendingRefs.delete(ref!);
        if (!refused?.length) return this.#emit('error', new PushletClientError(`server error: ${data}`));
        for (const topic of refused) this.#refuse(topic, data);
        return;
      }
      case RESET: {
        const value = parseObject(data);
        const reset = value ? resetData(value) : { topics: [], reason: data };
        const told = this.#toldResets;
        if (reset.topics.length > 0 && reset.topics.every((topic) => told.delete(topic))) return;
        return this.#emit('reset', reset);
      }
      case DISCONNECTED:
        return this.#serverDisconnected(data);
    }
    // Messages, presence joins and leaves among them (messages of the topic itself, for its subscriptions).
    if (event.startsWith(RESERVED) && event !== JOIN && event !== LEAVE) return;
    if (id !== undefined) this.#lastId = id;
    const message: ClientMessage = {
      id: id ?? '',
      topic: frame.topic,
      event,
      data,
      timestamp: frame.timestamp,
    };
    this.#emit('message', message);
    // The subscriptions of the message's topic (an old server's SSE frames name none: every subscription of the stream).
    const handlers = new Set<ClientSubscription>();
    for (const topic of message.topic !== undefined ? [message.topic] : transport.topics) {
      for (const s of this.#entries.get(topic) ?? []) handlers.add(s);
    }
    // And those of every pattern held that matches it (`orders/*`), each handler once.
    if (message.topic && message.topic !== '*') {
      for (const [key, subscriptions] of this.#entries) if (matches(key, message.topic)) for (const s of subscriptions) handlers.add(s);
    }
    for (const s of handlers) callSafely(s.handler, message);
  }

  #confirm(topics: unknown): void {
    for (const topic of strings(topics)) {
      const subscriptions = this.#entries.get(topic);
      if (!subscriptions) continue;
      this.#confirmed.add(topic);
      for (const s of [...subscriptions]) s.confirm(topic);
    }
  }

  #refuse(topic: string, reason: string): void {
    const subscriptions = this.#entries.get(topic);
    if (!subscriptions) return;
    this.#entries.delete(topic);
    // Not held by the connection (no `unsubscribe` for it).
    this.#transport?.topics.delete(topic);
    // A topic refused after it was confirmed (on a reconnect) has no `ready` left to reject: say so.
    if (this.#confirmed.delete(topic)) this.#emit('error', new PushletSubscribeError(topic, reason));
    for (const s of [...subscriptions]) s.refuse(topic, reason);
  }

  #ended(transport: Transport, { opened, reason, status, code, retryMs }: TransportEnd): void {
    this.#transport = undefined;
    this._dropped(false);
    // Disconnected by the server (the `pushlet:disconnected` notice did not arrive first).
    if (code === CLOSE_DISCONNECTED) return this.#serverDisconnected(reason);
    // `auto` while no transport has got through yet: a connection that never got through (not
    // refused: unreachable, or a failed upgrade) hands WebSocket over to SSE; SSE hands back to
    // WebSocket, tried first again (the server may be down). A WebSocket upgrade refused for want
    // of a valid token looks like a failed upgrade (browsers hide its status); SSE's 401 says what
    // it was: WebSocket again, with the next token.
    if (this.#probing && ((!opened && status === undefined) || status === 401)) {
      this.#kind = transport.kind === 'websocket' ? 'sse' : 'websocket';
      if (this.#kind === 'sse') return void this.#open();
    }
    if (status === 400 || status === 403) {
      // SSE admits a request's topics all or none: the topics not yet confirmed are the refused ones.
      const unconfirmed = [...transport.topics].filter((topic) => this.#entries.has(topic) && !this.#confirmed.has(topic));
      for (const topic of unconfirmed) this.#refuse(topic, reason);
      if (unconfirmed.length > 0) return void this.#open();
    }
    this.#retry(
      new PushletConnectionError(status ? `refused: ${status} ${reason}` : reason ? `dropped: ${reason}` : `ended${code ? ` (${code})` : ''}`, status, code),
      retryMs,
    );
  }

  /** Reports a failed attempt or a drop, and reconnects after the backoff (or `atLeastMs`, if longer). */
  #retry(error: PushletConnectionError, atLeastMs = 0): void {
    this.#emit('error', error);
    if (this.#phase !== 'running') return;
    const delay = backoffDelay(this.#attempt++, this._options.minReconnectDelayMs ?? 500, this._options.maxReconnectDelayMs ?? 30_000);
    this.#setState('connecting');
    this.#reconnectTimer = setTimeout(
      () => {
        this.#reconnectTimer = undefined;
        void this.#open();
      },
      Math.max(atLeastMs, delay),
    );
  }

  /**
   * Brings the open connection's topics in line with the client's. WebSocket: a `subscribe` and
   * an `unsubscribe` command for the difference; SSE: a new stream with the new list and the last
   * id, once the tick is over (`later`): the subscriptions of one tick share it, and a topic
   * released and subscribed again in the same tick changes nothing.
   */
  #sync(later?: boolean): void {
    const transport = this.#transport;
    if (!transport || this.#state !== 'connected') return;
    const sse = transport.kind === 'sse';
    // Every call queues its own check: the first one that finds a difference replaces the stream, the others find it gone.
    if (sse && !later) return queueMicrotask(() => this.#sync(true));
    const missing = [...this.#entries.keys()].filter((topic) => !transport.topics.has(topic));
    const extra = [...transport.topics].filter((topic) => !this.#entries.has(topic));
    if (sse) {
      // The same topics (one released and subscribed again): the stream has them all, confirmed.
      if (missing.length + extra.length === 0) return this.#confirm([...transport.topics]);
      this.#dropTransport();
      return void this.#open();
    }
    for (const topic of missing) transport.topics.add(topic);
    for (const topic of extra) transport.topics.delete(topic);
    // One command per rewind asked (a `subscribe` without an id is rewound).
    const groups = new Map<number, string[]>();
    for (const topic of missing) {
      const rewind = this.#rewinds.get(topic) ?? 0;
      this.#rewinds.delete(topic);
      groups.set(rewind, [...(groups.get(rewind) ?? []), topic]);
    }
    for (const [rewind, topics] of groups) {
      this.#pendingRefs.set(++this.#refs, topics);
      transport.send({ action: 'subscribe', topics, ref: this.#refs, ...(rewind && { rewind }) });
    }
    if (extra.length > 0) transport.send({ action: 'unsubscribe', topics: extra, ref: ++this.#refs });
  }

  #release(subscription: ClientSubscription): void {
    for (const topic of subscription.topics) {
      const subscriptions = this.#entries.get(topic);
      if (!subscriptions?.delete(subscription) || subscriptions.size > 0) continue;
      this.#entries.delete(topic);
      this.#confirmed.delete(topic);
    }
    if (this.#phase === 'running') this.#sync();
  }

  /** Cancels the pending reconnect and ends the connection. */
  #stop(): void {
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#dropTransport();
  }

  #dropTransport(): void {
    this.#transport?.close();
    this.#transport = undefined;
    this.#pendingRefs.clear();
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
    this.#emit('error', new PushletConnectionError(`disconnected: ${reason}`, undefined, CLOSE_DISCONNECTED));
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

/** A frame's data as an object whose fields can be read (any JSON value; `null` as `{}`); `undefined` when it is not JSON. */
function parseObject(data: string): Record<string, unknown> | undefined {
  try {
    return Object(JSON.parse(data));
  } catch {
    return undefined;
  }
}

function resetData(value: Record<string, unknown>): ResetData {
  return { topics: strings(value.topics), reason: typeof value.reason === 'string' ? value.reason : '' };
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((t): t is string => typeof t === 'string') : [];
}

/**
 * Whether a held key that is a pattern (`orders/*`, `users/42/#`) matches `topic`: the grammar of
 * `protocol/topics.ts` (`matchesPattern`), written again in a few bytes for the bundle. False for
 * a plain topic (the exact lookup covers it). Tested against the server's in test/client.test.ts.
 */
export function matches(key: string, topic: string): boolean {
  const p = key.split('/');
  const t = topic.split('/');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '#') return true;
    if (p[i] !== '*' ? p[i] !== t[i] || p.length < 2 : !t[i]) return false;
  }
  return p.length === t.length && /[*#]/.test(key);
}
