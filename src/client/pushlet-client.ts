import { CLOSE_CODES, EVENTS, RESERVED_PREFIX, type CommandRef, type PresenceMember, type ResetData, type TopicsData } from '../protocol/index.js';
import { backoffDelay } from './backoff.js';
import { CLIENT_TEXTS, PushletClientError, PushletCommandError, PushletConnectionError, PushletSubscribeError } from './client-errors.js';
import type { ClientEvents, ClientMessage, ClientState, PushletClientOptions } from './client-types.js';
import { openEventStream } from './sse-transport.js';
import { createSubscription, type ClientSubscription, type MessageHandler, type Subscription } from './subscription.js';
import { endpointUrl, type ClientFrame, type Transport, type TransportEnd } from './transport.js';
import { openWebSocket, webSocketConstructor } from './ws-transport.js';

/** A topic the client holds: `subscribing` until the server first confirms it. */
interface TopicEntry {
  state: 'subscribing' | 'subscribed';
  readonly subscriptions: Set<ClientSubscription>;
}

/**
 * The client's life: not started yet, running (connected or trying to be), offline, disconnected by
 * the server (until `connect()`), or closed for good.
 */
type Phase = 'idle' | 'running' | 'offline' | 'stopped' | 'closed';

/** A `publish`, `presence` or `refresh` command awaiting its reply. */
interface PendingCommand {
  readonly action: string;
  readonly resolve: (frame: ClientFrame) => void;
  readonly reject: (error: Error) => void;
}

/** Who is on a presence topic: what {@link PushletClient.presence} resolves to. */
export interface PresenceResult {
  count: number;
  members: PresenceMember[];
}

type Listeners = { [K in keyof ClientEvents]?: Set<(value: never) => void> };

interface GlobalEvents {
  addEventListener(name: string, listener: () => void): void;
  removeEventListener(name: string, listener: () => void): void;
}

/**
 * A Pushlet client over WebSocket or Server-Sent Events. It connects on the first `subscribe()`
 * (or `connect()`), keeps the id of the last message, and after any drop reconnects with
 * full-jitter backoff and resumes every topic at once from that id: missed messages arrive once,
 * in order, or a `reset` event says which topics may have missed some.
 */
export class PushletClient {
  readonly #baseUrl: string;
  readonly #options: PushletClientOptions;
  /** `auto` keeps probing both transports until one has carried a connection. */
  readonly #auto: boolean;
  #listeners: Listeners = {};
  readonly #entries = new Map<string, TopicEntry>();
  /** Subscribe commands awaiting their reply (WebSocket), by `ref`. */
  readonly #pendingRefs = new Map<CommandRef, readonly string[]>();
  /** `publish`, `presence` and `refresh` commands awaiting their reply, by `ref`. */
  readonly #commands = new Map<CommandRef, PendingCommand>();
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
    if (!/^https?:\/\//i.test(baseUrl)) throw new PushletClientError(CLIENT_TEXTS.badBaseUrl);
    this.#baseUrl = baseUrl;
    this.#options = { ...options };
    const transport = options.transport ?? 'auto';
    this.#auto = transport === 'auto';
    this.#kind = transport === 'sse' ? 'sse' : 'websocket';
    if (this.#kind === 'websocket' && !webSocketConstructor(options)) {
      if (transport === 'websocket') throw new PushletClientError(CLIENT_TEXTS.noWebSocket);
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
   * Publishes a message from this client (WebSocket only; the server must allow it with
   * `authorizePublish`). `data`: a string is sent as is, any other JSON value as its JSON text.
   * Resolves with the message's id once the server has it.
   * @throws PushletCommandError when the server refuses it (not allowed, bad topic or event, too large, rate limit).
   * @throws PushletClientError when not connected over WebSocket, or the connection ends before the reply.
   */
  async publish(topic: string, event: string, data: unknown): Promise<{ id: string }> {
    const reply = await this.#command('publish', { topic, event, data });
    return { id: reply.id ?? '' };
  }

  /**
   * Who is on a presence topic, across every instance (WebSocket only; the topic must be one the
   * connection may subscribe to). Joins and leaves arrive as messages of the topic itself (events
   * `pushlet:join` and `pushlet:leave`, `data` the member as JSON) through `subscribe()`.
   * @throws PushletCommandError when the server refuses (not a presence topic, not allowed).
   * @throws PushletClientError when not connected over WebSocket, or the connection ends before the reply.
   */
  async presence(topic: string): Promise<PresenceResult> {
    const reply = await this.#command('presence', { topic });
    const value = parseJson(reply.data) as Partial<PresenceResult> | undefined;
    const members = Array.isArray(value?.members) ? value.members : [];
    return { count: typeof value?.count === 'number' ? value.count : members.length, members };
  }

  /**
   * Renews the connection's identity before it expires (WebSocket only): the server runs its
   * `authenticate` hook again with `token` (default: the `token` option, its function asked again).
   * A token passed here also replaces a fixed `token` option for later reconnects.
   * @throws PushletCommandError when the server refuses the token (the connection stays as it was).
   * @throws PushletClientError when there is no token, not connected over WebSocket, or the connection ends before the reply.
   */
  async refresh(token?: string): Promise<void> {
    const option = this.#options.token;
    const value = token ?? (await (typeof option === 'function' ? option() : option));
    if (typeof value !== 'string' || value === '') throw new PushletClientError(CLIENT_TEXTS.noToken);
    await this.#command('refresh', { token: value });
    if (token !== undefined && typeof option !== 'function') this.#options.token = token;
  }

  /** Sends a command over the open WebSocket and waits for its reply (same `ref`). */
  #command(action: string, fields: Record<string, unknown>): Promise<ClientFrame> {
    this.#assertOpen();
    const transport = this.#transport;
    if (transport?.kind !== 'websocket' || this.#state !== 'connected') return Promise.reject(new PushletClientError(CLIENT_TEXTS.notWebSocket));
    const ref = ++this.#refs;
    return new Promise<ClientFrame>((resolve, reject) => {
      this.#commands.set(ref, { action, resolve, reject });
      // `send` throws on data JSON cannot carry (a BigInt, a cycle): the promise rejects with that.
      if (!transport.send({ action, ...fields, ref })) this.#settle(ref, new PushletClientError(CLIENT_TEXTS.notWebSocket));
    }).finally(() => this.#commands.delete(ref));
  }

  /** Answers a pending command with its reply frame or an error; false when no command has that ref. */
  #settle(ref: CommandRef | undefined, outcome: ClientFrame | Error): boolean {
    const pending = ref === undefined ? undefined : this.#commands.get(ref);
    if (!pending) return false;
    this.#commands.delete(ref!);
    if (outcome instanceof Error) pending.reject(outcome);
    else pending.resolve(outcome);
    return true;
  }

  /** The connection is gone: every command still waiting fails. */
  #failCommands(): void {
    const error = new PushletClientError(this.#phase === 'closed' ? CLIENT_TEXTS.closed : CLIENT_TEXTS.dropped);
    for (const ref of [...this.#commands.keys()]) this.#settle(ref, error);
  }

  /**
   * Subscribes `handler` to one topic or several. Topics already held by another subscription
   * are shared (one server subscription). Throws only on a closed client or no topic; a topic the
   * server refuses rejects `ready`.
   */
  subscribe(topics: string | readonly string[], handler: MessageHandler): Subscription {
    this.#assertOpen();
    const list = [...new Set(typeof topics === 'string' ? [topics] : topics)];
    if (list.length === 0) throw new PushletClientError(CLIENT_TEXTS.noTopics);
    const subscription = createSubscription(list, handler, (s) => this.#release(s));
    const added: string[] = [];
    for (const topic of list) {
      let entry = this.#entries.get(topic);
      if (!entry) {
        this.#entries.set(topic, (entry = { state: 'subscribing', subscriptions: new Set() }));
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
    const closed = new PushletClientError(CLIENT_TEXTS.closed);
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
    const options = this.#options;
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
    this.#pendingRefs.clear();
    const transport: Transport = (websocket ? openWebSocket : openEventStream)(request, options, {
      frame: (frame) => this.#transport === transport && this.#receive(transport, frame),
      ended: (end) => this.#transport === transport && this.#ended(transport, end),
    });
    this.#transport = transport;
  }

  #receive(transport: Transport, frame: ClientFrame): void {
    switch (frame.event) {
      case EVENTS.connected: {
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
      case EVENTS.subscribed:
        if (frame.ref !== undefined) this.#pendingRefs.delete(frame.ref);
        return this.#confirm(topicsData(frame.data).topics);
      case EVENTS.error: {
        const pending = frame.ref !== undefined ? this.#commands.get(frame.ref) : undefined;
        if (pending) return void this.#settle(frame.ref, new PushletCommandError(pending.action, frame.data));
        return this.#serverError(frame);
      }
      case EVENTS.reset: {
        const reset = resetOf(frame.data);
        const told = this.#toldResets;
        if (reset.topics.length > 0 && reset.topics.every((topic) => told.delete(topic))) return;
        return this.#emit('reset', reset);
      }
      case EVENTS.published:
      case EVENTS.presence:
      case EVENTS.refreshed:
        return void this.#settle(frame.ref, frame);
      case EVENTS.disconnected:
        return this.#serverDisconnected(frame.data);
      // Presence: messages of the topic itself, for its subscriptions.
      case EVENTS.join:
      case EVENTS.leave:
        return this.#message(transport, frame);
      default:
        if (!frame.event.startsWith(RESERVED_PREFIX)) this.#message(transport, frame);
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
    this.#failCommands();
    if (this.#phase !== 'running') return;
    // Disconnected by the server (the `pushlet:disconnected` notice did not arrive first).
    if (end.kind !== 'refused' && end.code === CLOSE_CODES.disconnected) return this.#serverDisconnected(end.kind === 'dropped' ? end.detail : '');
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
    const delay = backoffDelay(this.#attempt++, this.#options.minReconnectDelayMs ?? 500, this.#options.maxReconnectDelayMs ?? 30_000);
    this.#setState('connecting');
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      void this.#open();
    }, Math.max(atLeastMs, delay));
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
    if (missing.length > 0) {
      const ref = ++this.#refs;
      this.#pendingRefs.set(ref, missing);
      for (const topic of missing) transport.topics.add(topic);
      transport.send({ action: 'subscribe', topics: missing, ref });
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
    this.#failCommands();
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
    this.#emit('error', new PushletConnectionError(`the server disconnected this client: ${reason}`, undefined, CLOSE_CODES.disconnected));
  }

  #setState(state: ClientState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#emit('state', state);
  }

  #assertOpen(): void {
    if (this.#phase === 'closed') throw new PushletClientError(CLIENT_TEXTS.closed);
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
  return reset && typeof reset === 'object' ? { topics, reset: { topics: strings(reset.topics), reason: String(reset.reason ?? '') }, heartbeat } : { topics, heartbeat };
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
