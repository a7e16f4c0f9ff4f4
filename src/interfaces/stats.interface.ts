import type { PushletRefusalReason } from '../core/counters.js';

/** A figure per transport, and their sum. */
export interface PushletTransportFigures {
  readonly sse: number;
  readonly ws: number;
  readonly total: number;
}

/**
 * A snapshot of what one instance is doing (`PushletService.stats()`): everything the Prometheus
 * metrics of `pushlet-nestjs/metrics` show (their names in brackets), from counts kept as things
 * happen. Cheap enough to call every second; `topicSubscribers` (on request) walks the topics.
 *
 * "Connections" are the built-in endpoints' and `stream()` routes given their `request`;
 * server-side consumers (`subscribe()`) are subscribers, not connections.
 */
export interface PushletStats {
  /** Open connections (`pushlet_connections`). */
  readonly connections: PushletTransportFigures;
  /** Topics with at least one local subscriber (`pushlet_topics`). */
  readonly topics: number;
  /** Local subscriptions (a connection on three topics counts three, plus one for broadcasts). */
  readonly subscribers: number;
  /** Local subscriptions of topics, broadcasts not counted (`pushlet_subscriptions`). */
  readonly subscriptions: number;
  /** Messages published through this instance and acknowledged by the broker. */
  readonly published: number;
  /** The same, by origin (`pushlet_messages_published_total`). */
  readonly publishedBy: { readonly server: number; readonly client: number };
  /** Messages handed to connections as they were published (`pushlet_deliveries_total`); replays are in `replayed`. */
  readonly deliveries: PushletTransportFigures;
  /** Bytes of those messages' frames (`pushlet_bytes_sent_total`). */
  readonly bytesSent: PushletTransportFigures;
  /** Clients disconnected because their outgoing buffer overflowed (`slowConsumers.total`). */
  readonly slowConsumersDisconnected: number;
  /** The same, by transport (`pushlet_slow_consumer_disconnects_total`). */
  readonly slowConsumers: PushletTransportFigures;
  /** Connections that resumed with a last event id: exactly, or told `pushlet:reset` (`pushlet_resumes_total`). */
  readonly resumes: { readonly recovered: number; readonly reset: number };
  /** Messages replayed from history to resuming connections (`pushlet_replayed_messages_total`). */
  readonly replayed: number;
  /** Connections turned away before they started, by reason (`pushlet_connections_refused_total`). */
  readonly refused: Readonly<Record<PushletRefusalReason, number>>;
  /** The broker's link (`pushlet_broker_up`, `pushlet_broker_queued`). */
  readonly broker: {
    /** Publications go out and messages come in now. */
    readonly connected: boolean;
    /** `ready` in memory; the Redis link's state (`starting`, `recovering`, `ready`, `down`, `stopped`). */
    readonly state: string;
    /** Publications waiting for Redis to record them. */
    readonly queued: number;
    /**
     * Topics caught up as connections start or resume (broadcasts included) from this instance's
     * recent window, without reading the broker (`history.recentWindowBytes`); always 0 in memory
     * (`pushlet_catch_up_reads_total{source="window"}`).
     */
    readonly resumesFromWindow: number;
    /** Topics caught up from the broker's history (`pushlet_catch_up_reads_total{source="broker"}`). */
    readonly resumesFromBroker: number;
    /** Bytes the recent window holds now (estimated; at most `history.recentWindowBytes`; 0 in memory; `pushlet_recent_window_bytes`). */
    readonly windowBytes: number;
  };
  readonly heartbeatInterval: number;
  /** With `stats({ topics: true })` only: each topic with local subscribers and how many, most first. */
  readonly topicSubscribers?: ReadonlyArray<{ readonly topic: string; readonly subscribers: number }>;
}

/** Options of `PushletService.stats()`. */
export interface PushletStatsOptions {
  /** Also list each topic's local subscribers (`topicSubscribers`): a walk over the topics. */
  topics?: boolean;
}
