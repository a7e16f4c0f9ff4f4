import type { Envelope } from '../core/envelope.js';
import type { PresenceStore } from '../core/presence.js';
import type { Position } from '../protocol/ids.js';

/**
 * What a broker reports to the instance it serves. Typed events, never fake messages.
 */
export interface BrokerEventHandler {
  /** A message for this instance's subscribers of its topic, in the topic's order, once. */
  message(envelope: Envelope): void;
  /**
   * Messages of `topic` may have been lost on this instance (e.g. Redis lost its data while this
   * instance was cut off): its subscribers are told with `pushlet:reset`. With `until`, only
   * messages before that position are concerned: a subscriber already past it lost nothing.
   */
  gap(topic: string, until?: Position): void;
  /**
   * An instance-wide command sent by some instance (this one included) with
   * {@link PushletBroker.control}: the hub runs it on this instance's connections.
   */
  control?(command: PushletControlCommand): void;
}

/**
 * A command for every instance (`PushletBroker.control`), such as "close this user's connections"
 * (`PushletService.disconnect`). A union by `kind`, so that more can be added; an instance ignores
 * a kind it does not know.
 */
export type PushletControlCommand = {
  readonly kind: 'disconnect';
  /** The identity `id` whose connections close. */
  readonly userId: string;
  /** Told to the clients (`pushlet:disconnected`, close reason of 4002); at most 123 bytes of UTF-8. */
  readonly reason: string;
};

/** Where one topic's replay starts: every message of `topic` after `after`. */
export interface ReplayRequest {
  readonly topic: string;
  readonly after: Position;
}

/** What a broker found in its history. */
export interface ReplayResult {
  /**
   * Messages after each request's position, each topic's in its order. With `ordering: 'total'`
   * they are merged in id order across topics.
   */
  readonly envelopes: readonly Envelope[];
  /**
   * Topics for which messages after the position may be missing: the position is older than the
   * history window, or history was lost. Clients are told with `pushlet:reset`; never a silent gap.
   */
  readonly incomplete: readonly string[];
  /**
   * Topics whose position is not one this broker handed out (ahead of its clock, for one): there
   * is nothing to replay after it, and delivery starts from now.
   */
  readonly unknown: readonly string[];
}

/** How a broker's link stands now (for `stats()`, metrics and health checks). */
export interface PushletBrokerStatus {
  /** Publications go out and messages come in now. */
  readonly connected: boolean;
  /** The state by name: `ready` for a broker that is always connected; the Redis link's state (`redis-link.ts`). */
  readonly state: string;
  /** Publications waiting for the broker to record them (the Redis outbox). */
  readonly queued: number;
}

/**
 * Moves messages between publishers and this instance's subscribers, and keeps the history that
 * resume reads. The in-memory broker serves one process; the Redis broker joins many.
 * Implement it to plug in another backbone (pass it as the `broker` option).
 */
export interface PushletBroker {
  /**
   * `total`: ids are ordered across topics, so one position resumes every topic of a connection.
   * `per-topic`: each topic orders its own ids (Redis Cluster); connections carry a position per topic.
   */
  readonly ordering: 'total' | 'per-topic';
  /**
   * Starts the broker. From then on it reports every message that this instance's local
   * subscribers must see (its own publications included), and every gap, to `handler`.
   */
  start(handler: BrokerEventHandler): Promise<void>;
  /** Assigns an id, records the message in history and routes it to every interested instance. */
  publish(topic: string, event: string, data: string): Promise<Envelope>;
  /** This instance now has subscribers of `topic`; resolves once its messages will be delivered. */
  watch(topic: string): Promise<void>;
  /** This instance no longer has subscribers of `topic`. */
  unwatch(topic: string): void;
  /** Each request's topic's messages after its position. */
  replay(requests: readonly ReplayRequest[]): Promise<ReplayResult>;
  /**
   * For each topic, a position at or before every message of it not yet delivered here, and
   * after every one already delivered. A new connection starts from these, so that if it drops
   * before its first message, resuming from them still loses nothing. With `estimate`, a broker
   * that cannot tell exactly now (Redis unreachable) may answer an earlier position (which can
   * only add older messages); without it, it rejects instead.
   */
  positions(topics: readonly string[], estimate?: boolean): Promise<Position[]>;
  /** Stops delivering and releases connections. */
  stop(): Promise<void>;
  /**
   * Sends `command` to every instance, this one included (each reports it as a `control` event),
   * at most once, live only (an instance cut off from the broker at that moment misses it).
   * A broker without it serves one instance: commands reach only this one.
   */
  control?(command: PushletControlCommand): Promise<void>;
  /** How the broker's link stands; a broker without it counts as always connected. */
  status?(): PushletBrokerStatus;
  /**
   * The presence store that goes with this broker (members shared by every instance it joins),
   * each member living `ttlMs` unless its instance refreshes it. Without it, presence is kept in
   * memory, per instance.
   */
  presenceStore?(ttlMs: number): PresenceStore;
}

/** Injection token of the active {@link PushletBroker}. */
export const PUSHLET_BROKER = Symbol('PUSHLET_BROKER');
