import type { Envelope } from '../core/envelope.js';

/** What a broker found in its history after a given id. */
export interface ReplayResult {
  /** Messages of the requested topics published after the id, oldest first. */
  readonly envelopes: readonly Envelope[];
  /**
   * True when messages after the id may be missing: the id is unknown, malformed, or older than
   * the history window. Clients are told with a `pushlet:reset` event; never a silent gap.
   */
  readonly reset: boolean;
}

/**
 * Moves messages between publishers and this instance's subscribers, and keeps the history that
 * resume reads. The in-memory broker serves one process; the Redis broker joins many.
 * Implement it to plug in another backbone (pass it as the `broker` option).
 */
export interface PushletBroker {
  /**
   * Starts the broker. From then on it calls `deliver` once for every message that this
   * instance's local subscribers must see (its own publications included).
   */
  start(deliver: (envelope: Envelope) => void): Promise<void>;
  /** Assigns an id, records the message in history and routes it to every interested instance. */
  publish(topic: string, event: string, data: string): Promise<Envelope>;
  /** This instance now has subscribers of `topic`; resolves once its messages will be delivered. */
  watch(topic: string): Promise<void>;
  /** This instance no longer has subscribers of `topic`. */
  unwatch(topic: string): void;
  /** Messages of `topics` published after the message `afterId`, in publication order. */
  replay(topics: readonly string[], afterId: string): Promise<ReplayResult>;
  /**
   * An id at or before every message not yet published. A new connection starts from it, so that
   * if it drops before its first message, resuming from this id still loses nothing.
   */
  position(): Promise<string>;
  /** Stops delivering and releases connections. */
  stop(): Promise<void>;
}

/** Injection token of the active {@link PushletBroker}. */
export const PUSHLET_BROKER = Symbol('PUSHLET_BROKER');
