import type { PresenceStore } from '../core/presence.js';
import type { Position } from '../protocol/ids.js';

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

/** A publication handed to a broker to record and route. */
export interface BrokerPublication {
  readonly topic: string;
  readonly event: string;
  readonly data: string;
  /**
   * The publishing instance (random per process) and its publication number. A publication whose
   * outcome was unknown (the link dropped before the answer) is appended again with the same pair:
   * a broker records it once and answers the first position (Redis: the publish script; JetStream:
   * message de-duplication).
   */
  readonly origin: string;
  readonly counter: number;
}

/** A message as a broker hands it back, live or from history. */
export interface BrokerRecord {
  /** Its position in its topic (in every topic with `ordering: 'total'`), assigned by the broker. */
  readonly position: Position;
  readonly topic: string;
  readonly event: string;
  readonly data: string;
  /** The publication's origin and counter, where the broker keeps them (see {@link BrokerPublication}). */
  readonly origin?: string;
  readonly counter?: number;
  /**
   * When it was recorded (ms since the epoch), for the message's `timestamp`, where the position's
   * `ms` is not that time (NATS JetStream: `ms` is the stream's creation, `seq` its sequence).
   */
  readonly time?: number;
}

/** What a broker's history holds of one topic after a position. */
export interface TopicRead {
  readonly topic: string;
  /** The records after the position, oldest first. */
  readonly records: readonly BrokerRecord[];
  /**
   * The history is complete from here on: a position before it may have missed messages (trimmed
   * by count or age, or lost with the broker's data). A broker whose history can be lost (a Redis
   * restarted empty) moves it past everything it lost: that is how the core tells a reset from an
   * exact resume.
   */
  readonly floor: Position;
  /** The broker's clock when it read: every message at or before it is in `records`, or gone. */
  readonly readAt: Position;
  /**
   * No position after this one had been handed out when the broker read (its clock, plus any
   * tolerance it needs for clock steps): a client's position past it is unknown, not a resume.
   */
  readonly limit: Position;
}

/** Which topics of a broker's history may hold records after a position (see {@link BrokerPatterns.topicsAfter}). */
export interface TopicsAfter {
  /** Every topic with a record after the position (more is harmless: the core reads and filters them). */
  readonly topics: readonly string[];
  /** The list is complete for positions from here on; an earlier position may miss topics (a reset). */
  readonly floor: Position;
  /** As {@link TopicRead.readAt}: a topic first written after it may be missing from the list (its records come live). */
  readonly readAt: Position;
  /** As {@link TopicRead.limit}: a position past it was never handed out. */
  readonly limit: Position;
}

/**
 * Pattern subscriptions (`orders/*`, `users/42/#`; docs/protocol.md, "Pattern subscriptions"),
 * for brokers whose positions are ordered across topics (`ordering: 'total'`). Routing may be
 * coarse (a whole first segment, or everything): the core matches each record exactly. The
 * recovery core resumes a pattern like a topic, by reading the topics {@link topicsAfter} names.
 */
export interface BrokerPatterns {
  /** Routes to this instance the live records of every topic `patterns` match (at least); resolves once they will come. */
  subscribe(patterns: readonly string[]): Promise<void>;
  /** This instance no longer needs the records of `patterns` (except those other subscriptions route). */
  unsubscribe(patterns: readonly string[]): void;
  /** The topics that may hold records after `after`: those `patterns` match at least (the core filters them). */
  topicsAfter(after: Position, patterns: readonly string[]): Promise<TopicsAfter>;
}

/** One topic's newest history asked of {@link PushletBroker.tail}. */
export interface TailRequest {
  readonly topic: string;
  /** At most this many records (1 or more). */
  readonly limit: number;
  /** Only records strictly before this position (a page before one already read); none: up to the newest. */
  readonly before?: Position;
}

/**
 * What a broker reports to the recovery core that drives it. Typed events, never fake messages.
 */
export interface BrokerEvents {
  /** The broker can be used again (a connection came back): the core recovers as soon as {@link PushletBroker.isConnected}. */
  up(): void;
  /**
   * Something was lost (a connection, a subscription, or a command found the backend unreachable):
   * live messages may have been missed. The core holds live messages, queues publications and
   * recovers once the broker is connected again.
   */
  down(): void;
  /**
   * Live records of watched topics, each topic's in its order (one call may carry several); with
   * `ordering: 'total'`, every record in position order across topics (a connection's id is its
   * newest message's position: a record arriving after a newer one of another topic could be lost
   * to a client that resumes in between). Records of topics not watched are ignored.
   */
  records(records: readonly BrokerRecord[]): void;
  /** An instance-wide command sent by some instance (this one included) with {@link PushletBroker.control}. */
  control(command: PushletControlCommand): void;
}

/** How a broker's link stands now (for `stats()`, metrics and health checks). */
export interface PushletBrokerStatus {
  /** Publications go out and messages come in now. */
  readonly connected: boolean;
  /** The link's state by name (`core/broker-link.ts`): `ready` when live. */
  readonly state: string;
  /** Publications waiting for the broker to record them. */
  readonly queued: number;
}

/**
 * A broker: moves messages between instances and keeps the history that resume reads. It is an
 * adapter with no delivery logic of its own: the recovery core (`core/recovery-core.ts`) decides
 * what a connection or an instance gets after any fault (held live messages, recovery rounds,
 * positions, resets), the same way for every broker. The in-memory broker serves one process;
 * the Redis broker joins many. Implement it to plug in another backbone (the `broker` option);
 * `test/broker-conformance.test.ts` is the contract it must pass.
 */
export interface PushletBroker {
  /**
   * `total`: positions are ordered across topics, so one position resumes every topic of a
   * connection. `per-topic`: each topic orders its own (Redis Cluster); connections carry a
   * position per topic.
   */
  readonly ordering: 'total' | 'per-topic';
  /**
   * What a position's `ms` is. `time` (default): the backend's clock in milliseconds, so that a
   * start estimated from the instance's clock (less a margin) while the broker cannot be asked is
   * at or before every position handed out later. `sequence`: not a clock (NATS JetStream: the
   * stream's creation, with the stream sequence as `seq`); with nothing seen from the broker yet
   * such an estimate is the very start (`0-0`), and records say their time ({@link BrokerRecord.time}).
   */
  readonly clock?: 'time' | 'sequence';
  /** Names the backend in logs: `Redis at 127.0.0.1:6379`. */
  readonly description: string;
  /**
   * Publications kept while the broker is unreachable, and live records held while the core
   * catches an instance up; past it publications fail and held records turn into resets.
   * Default 10,000.
   */
  readonly maxQueued?: number;
  /**
   * Whether the instance may start while the broker cannot be reached (publications then wait
   * for it). Default false: the module's start fails.
   */
  readonly startWithoutBackend?: boolean;
  /**
   * Whether a publication should wait for the end of the event-loop turn so that a turn's
   * publications go out together (a remote backend), rather than at once (in the process).
   */
  readonly batching?: boolean;
  /**
   * Connects and reports to `events` from then on; resolves once connected.
   * @throws an error naming the backend when it cannot be reached (unless `startWithoutBackend`).
   */
  start(events: BrokerEvents): Promise<void>;
  /** Whether every connection the broker needs answers now (a recovery may be tried). */
  isConnected(): boolean;
  /**
   * Prepares a connected backend before the core reads from it, at start and after every loss:
   * load scripts, subscribe the control channel, and check the history's identity (a backend that
   * lost its data must move its floors past what was lost, see {@link TopicRead.floor}).
   */
  prepare?(): Promise<void>;
  /**
   * Records publications and routes them to every instance that watches their topics (this one
   * included, through {@link BrokerEvents.records}); one answer per publication, in order, each
   * its position. Idempotent per origin and counter. A rejection that {@link unreachable} calls
   * transient makes the core send it again once the broker is back.
   */
  append(publications: readonly BrokerPublication[]): Array<Promise<Position>>;
  /** Routes the live records of `topics` to this instance; resolves once they will come. */
  subscribe(topics: readonly string[]): Promise<void>;
  /** This instance no longer needs the live records of `topics`. */
  unsubscribe(topics: readonly string[]): void;
  /** Each topic's history after its position. */
  read(requests: ReadonlyArray<{ readonly topic: string; readonly after: Position }>): Promise<TopicRead[]>;
  /**
   * Each topic's newest records still in history (at most `limit`, strictly before `before` when
   * given; none older than the history's age limit), oldest first: what rewind and history read.
   * Optional: without it, rewind is off (`limits.maxRewind` counts as 0) and history reads fail
   * with a clear error.
   */
  tail?(requests: readonly TailRequest[]): Promise<BrokerRecord[][]>;
  /** For each topic, a position at or after every record of it already published, and before every later one. */
  positions(topics: readonly string[]): Promise<Position[]>;
  /**
   * True when a failed call means the broker could not be reached (its outcome unknown: the core
   * sends a publication again later), false for a refusal a retry would meet again. Default: true.
   */
  unreachable?(error: unknown): boolean;
  /** Disconnects for good. */
  stop(): Promise<void>;
  /** Pattern routing and the topic index that resumes patterns; without it, pattern subscriptions are refused. */
  readonly patterns?: BrokerPatterns;
  /**
   * Sends `command` to every instance, this one included (each reports it through
   * {@link BrokerEvents.control}), at most once, live only. Without it, commands reach only this
   * instance.
   */
  control?(command: PushletControlCommand): Promise<void>;
  /**
   * The presence store that goes with this broker (members shared by every instance it joins).
   * `onAvailable` tells the store each time the broker is live again after an outage. Without it,
   * presence is kept in memory, per instance.
   */
  presenceStore?(ttlMs: number, onAvailable: (listener: () => void) => () => void): PresenceStore;
}

/** Injection token of the active {@link PushletBroker}. */
export const PUSHLET_BROKER = Symbol('PUSHLET_BROKER');
