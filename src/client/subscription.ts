import { PushletClientError, PushletSubscribeError, TEXT_UNSUBSCRIBED } from './client-errors.js';
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

/** @internal One `subscribe()` call: its handler, and what the client tells it about its topics. */
export interface ClientSubscription extends Subscription {
  readonly handler: MessageHandler;
  /** The server confirmed `topic`. */
  confirm(topic: string): void;
  /** The server refused `topic`: the whole subscription ends. */
  refuse(topic: string, reason: string): void;
  /** The client closed. */
  abandon(error: Error): void;
}

/** @internal `release` is told when the subscription ends by itself (unsubscribed or refused). */
export function createSubscription(
  topics: readonly string[],
  handler: MessageHandler,
  release: (subscription: ClientSubscription) => void,
): ClientSubscription {
  let state: SubscriptionState = 'subscribing';
  let reject!: (error: Error) => void;
  let resolve!: () => void;
  const waiting = new Set(topics);
  const ready = new Promise<void>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  // Marked as handled: a caller that never looks at `ready` must not crash the process.
  ready.catch(() => undefined);
  const abandon = (error: Error): void => {
    if (state === 'subscribing') reject(error);
    state = 'unsubscribed';
  };
  const end = (error: Error): void => {
    if (state === 'unsubscribed') return;
    abandon(error);
    release(subscription);
  };
  const subscription: ClientSubscription = {
    topics,
    handler,
    ready,
    get state() {
      return state;
    },
    unsubscribe: () => end(new PushletClientError(TEXT_UNSUBSCRIBED)),
    confirm(topic) {
      if (state !== 'subscribing' || !waiting.delete(topic) || waiting.size > 0) return;
      state = 'subscribed';
      resolve();
    },
    refuse: (topic, reason) => end(new PushletSubscribeError(topic, reason)),
    abandon,
  };
  return subscription;
}
