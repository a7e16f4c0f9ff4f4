import type { TestApp } from './app.js';
import { SseClient } from './sse-client.js';
import { WsClient } from './ws-client.js';

/** A message as a test subscriber saw it, whatever the transport. */
export interface SeenMessage {
  readonly id: string;
  readonly event: string;
  readonly data: string;
}

/**
 * A client subscribed to topics on one app instance, over some transport. Distributed-mode tests
 * are written against this interface and run once per entry of {@link TRANSPORTS}, so that a
 * WebSocket subscriber only needs a factory to be covered by the same tests.
 */
export interface TestSubscriber {
  readonly transport: string;
  /** Messages in arrival order (no `pushlet:*` control events). */
  readonly messages: readonly SeenMessage[];
  /** Every event, control events included (`pushlet:reset` data as sent), in arrival order. */
  readonly timeline: readonly SeenMessage[];
  /** `pushlet:reset` notices received. */
  readonly resets: number;
  /** The id to resume from: the last message's, or the connection's start position. */
  readonly lastEventId: string;
  /** Waits until `count` messages have arrived; resolves to all of them. */
  waitForMessages(count: number, ms?: number): Promise<readonly SeenMessage[]>;
  /** Waits until `count` `pushlet:reset` notices have arrived. */
  waitForResets(count: number, ms?: number): Promise<void>;
  /** Waits until `check` holds, checked whenever something arrives (bounded). */
  waitUntil(check: () => boolean, ms: number, what: string): Promise<void>;
  /** Waits until a message satisfies `predicate`. */
  waitForMessage(predicate: (message: SeenMessage) => boolean, ms?: number, what?: string): Promise<SeenMessage>;
  close(): void;
}

export interface SubscribeOptions {
  /** Resume after this id (SSE: the Last-Event-ID header). */
  lastEventId?: string;
  /** Rewind each topic by this many messages (the `rewind` parameter of the URL). */
  rewind?: number;
}

export interface SubscriberFactory {
  readonly name: string;
  /** Connects to `app` and resolves once the server has accepted the subscription. */
  open(app: TestApp, topics: readonly string[], options?: SubscribeOptions): Promise<TestSubscriber>;
}

class SseSubscriber implements TestSubscriber {
  readonly transport = 'sse';

  constructor(private readonly client: SseClient) {}

  get messages(): readonly SeenMessage[] {
    return this.client.messages.map((e) => ({ id: e.id ?? '', event: e.event, data: e.data }));
  }

  get timeline(): readonly SeenMessage[] {
    return this.client.events.map((e) => ({ id: e.id ?? '', event: e.event, data: e.data }));
  }

  get resets(): number {
    return this.client.events.filter((e) => e.event === 'pushlet:reset').length;
  }

  get lastEventId(): string {
    return this.client.lastEventId;
  }

  async waitForMessages(count: number, ms = 5_000): Promise<readonly SeenMessage[]> {
    await this.client.waitFor(() => this.client.messages.length >= count, ms, `${count} messages (have ${this.client.messages.length})`);
    return this.messages;
  }

  async waitForResets(count: number, ms = 5_000): Promise<void> {
    await this.client.waitFor(() => this.resets >= count, ms, `${count} pushlet:reset`);
  }

  async waitUntil(check: () => boolean, ms: number, what: string): Promise<void> {
    await this.client.waitFor(check, ms, what);
  }

  async waitForMessage(predicate: (message: SeenMessage) => boolean, ms = 5_000, what = 'a message'): Promise<SeenMessage> {
    await this.client.waitFor(() => this.messages.some(predicate), ms, what);
    return this.messages.find(predicate)!;
  }

  close(): void {
    this.client.close();
  }
}

export const sseSubscribers: SubscriberFactory = {
  name: 'SSE',
  async open(app, topics, options = {}) {
    const query = [...topics.map((t) => `topic=${encodeURIComponent(t)}`), ...(options.rewind ? [`rewind=${options.rewind}`] : [])].join('&');
    const headers: Record<string, string> = options.lastEventId !== undefined ? { 'Last-Event-ID': options.lastEventId } : {};
    const client = await SseClient.open(`${app.url}/events?${query}`, headers);
    if (client.status !== 200) throw new Error(`SSE answered ${client.status}: ${client.body}`);
    await client.waitForEvents(1, 5_000, 'pushlet:connected');
    return new SseSubscriber(client);
  },
};

class WsSubscriber implements TestSubscriber {
  readonly transport = 'ws';

  constructor(private readonly client: WsClient) {}

  get messages(): readonly SeenMessage[] {
    return this.client.messages.map((m) => ({ id: String(m.id), event: String(m.event), data: String(m.data) }));
  }

  get timeline(): readonly SeenMessage[] {
    return this.client.received.map((m) => ({ id: String(m.id ?? ''), event: String(m.event), data: String(m.data) }));
  }

  get resets(): number {
    return this.client.events('pushlet:reset').length;
  }

  get lastEventId(): string {
    const last = this.client.messages.at(-1) ?? this.client.events('pushlet:connected')[0];
    return String(last?.id ?? '');
  }

  async waitForMessages(count: number, ms = 5_000): Promise<readonly SeenMessage[]> {
    await this.client.waitForMessages(count, ms);
    return this.messages;
  }

  async waitForResets(count: number, ms = 5_000): Promise<void> {
    await this.client.waitForEvents('pushlet:reset', count, ms);
  }

  async waitUntil(check: () => boolean, ms: number, what: string): Promise<void> {
    // Every open connection has had its pushlet:connected frame, so `some` asks `check` at least once.
    await this.client.waitFor(() => check(), ms, what);
  }

  async waitForMessage(predicate: (message: SeenMessage) => boolean, ms = 5_000, what = 'a message'): Promise<SeenMessage> {
    const toSeen = (m: Record<string, unknown>): SeenMessage => ({ id: String(m.id), event: String(m.event), data: String(m.data) });
    const frame = await this.client.waitFor((m) => !String(m.event).startsWith('pushlet:') && predicate(toSeen(m)), ms, what);
    return toSeen(frame);
  }

  close(): void {
    this.client.close();
  }
}

export const wsSubscribers: SubscriberFactory = {
  name: 'WebSocket',
  async open(app, topics, options = {}) {
    const params = new URLSearchParams(topics.map((t): [string, string] => ['topic', t]));
    if (options.lastEventId !== undefined) params.set('lastEventId', options.lastEventId);
    if (options.rewind) params.set('rewind', String(options.rewind));
    const client = await WsClient.open(`${app.wsUrl}/ws?${params}`);
    await client.waitForEvents('pushlet:connected');
    return new WsSubscriber(client);
  },
};

/** Every transport the distributed tests run over. */
export const TRANSPORTS: readonly SubscriberFactory[] = [sseSubscribers, wsSubscribers];
