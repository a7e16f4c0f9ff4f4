import { CLIENT_TEXTS, PushletClientError, PushletSubscribeError } from './client-errors.js';
import type { ClientMessage } from './client-types.js';

/** Where a subscription stands: waiting for the server, confirmed, or ended (refused or unsubscribed). */
export type SubscriptionState = 'subscribing' | 'subscribed' | 'unsubscribed';

export type MessageHandler = (message: ClientMessage) => void;

/** What `PushletClient.subscribe` returns. */
export interface Subscription {
  readonly topics: readonly string[];
  readonly state: SubscriptionState;
  /**
   * Resolves once the server has confirmed every topic (`pushlet:connected` or `pushlet:subscribed`);
   * rejects with a {@link PushletSubscribeError} when it refuses one. Later reconnects do not change it.
   */
  readonly ready: Promise<void>;
  /** Stops the handler and leaves the topics no other subscription holds. */
  unsubscribe(): void;
}

/** @internal One `subscribe()` call: its handler and the topics the server has yet to confirm. */
export class ClientSubscription implements Subscription {
  readonly ready: Promise<void>;
  private current: SubscriptionState = 'subscribing';
  private readonly waiting: Set<string>;
  private resolve!: () => void;
  private reject!: (error: Error) => void;

  constructor(
    readonly topics: readonly string[],
    readonly handler: MessageHandler,
    private readonly release: (subscription: ClientSubscription) => void,
  ) {
    this.waiting = new Set(topics);
    this.ready = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // Marked as handled: a caller that never looks at `ready` must not crash the process.
    this.ready.catch(() => undefined);
  }

  get state(): SubscriptionState {
    return this.current;
  }

  unsubscribe(): void {
    if (this.current === 'unsubscribed') return;
    this.end(new PushletClientError(CLIENT_TEXTS.unsubscribed));
  }

  /** @internal The server confirmed `topic`. */
  confirm(topic: string): void {
    if (this.current !== 'subscribing' || !this.waiting.delete(topic) || this.waiting.size > 0) return;
    this.current = 'subscribed';
    this.resolve();
  }

  /** @internal The server refused `topic`: the whole subscription ends. */
  refuse(topic: string, reason: string): void {
    if (this.current === 'unsubscribed') return;
    this.end(new PushletSubscribeError(topic, reason));
  }

  /** @internal The client closed. */
  abandon(error: Error): void {
    if (this.current === 'subscribing') this.reject(error);
    this.current = 'unsubscribed';
  }

  private end(error: Error): void {
    if (this.current === 'subscribing') this.reject(error);
    this.current = 'unsubscribed';
    this.release(this);
  }
}
