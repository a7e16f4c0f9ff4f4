import { isoTime } from './iso-time.js';

/** Which endpoint a connection came through. */
export type PushletTransport = 'sse' | 'ws';

/** A message as clients receive it (docs/protocol.md, "A message"). */
export interface PushletMessage {
  /** Opaque to clients; hand it back to resume after this message. */
  readonly id: string;
  /** The topic it was published to; `*` for `publishToAll`. */
  readonly topic: string;
  readonly event: string;
  /** Strings as published; any other JSON value as its JSON text. */
  readonly data: string;
  /** Publication time, ISO 8601 in UTC. */
  readonly timestamp: string;
}

/** The module's own control events. */
export const EVENTS = {
  connected: 'pushlet:connected',
  subscribed: 'pushlet:subscribed',
  unsubscribed: 'pushlet:unsubscribed',
  pong: 'pushlet:pong',
  error: 'pushlet:error',
  reset: 'pushlet:reset',
  /** A member joined a presence topic (`data`: the {@link PresenceMember} as JSON). */
  join: 'pushlet:join',
  /** A member left a presence topic (`data`: the {@link PresenceMember} as JSON). */
  leave: 'pushlet:leave',
  /** Reply to the `presence` command (`data`: {@link PresenceData} as JSON). */
  presence: 'pushlet:presence',
  /** Reply to the `history` command (`data`: {@link HistoryData} as JSON). */
  history: 'pushlet:history',
  /** Reply to the `publish` command (`id`: the published message's id). */
  published: 'pushlet:published',
  /** Reply to the `refresh` command (`data`: `{"expiresAt":…}` as JSON, `null` when it no longer expires). */
  refreshed: 'pushlet:refreshed',
  /** The connection's identity expired: the stream ends after it (SSE; WebSocket closes with 4001). */
  expired: 'pushlet:expired',
  /** The server disconnected the connection's user (`data`: the reason; SSE; WebSocket closes with 4002). */
  disconnected: 'pushlet:disconnected',
} as const;

export type ControlEvent = (typeof EVENTS)[keyof typeof EVENTS];

/** WebSocket close codes the server uses (RFC 6455 section 7.4.1). */
export const CLOSE_CODES = {
  /** Server shutdown. */
  goingAway: 1001,
  /** A text frame that is not UTF-8. */
  invalidData: 1007,
  /** Too many commands. */
  policyViolation: 1008,
  /** A frame over the size limit. */
  tooBig: 1009,
  /** The server failed while handling the connection; the client may resume. */
  internalError: 1011,
  /** A connection limit, or a client that reads too slowly; the client may resume later. */
  tryAgainLater: 1013,
  /** The connection's identity expired (`expiresAt`) without a `refresh`; reconnect with a new token. */
  identityExpired: 4001,
  /** The server disconnected the connection's user (`PushletService.disconnect`); the reason is the close reason. */
  disconnected: 4002,
} as const;

/** Whatever the client put in a command's `ref`; echoed in the reply. */
export type CommandRef = string | number;

/**
 * A reply or notice. On WebSocket it is a JSON object of the message's shape; `data` is always a
 * string (JSON text where it carries a structure), so that clients with a `Data string` field
 * (the Go client) read every frame.
 */
export interface Notice {
  readonly event: ControlEvent;
  readonly data: string;
  readonly id?: string;
  readonly topic?: string;
  readonly ref?: CommandRef;
}

/** `data` of `pushlet:reset`: which topics may have missed messages, and why. */
export interface ResetData {
  readonly topics: readonly string[];
  readonly reason: string;
}

/** `data` of `pushlet:connected`, `pushlet:subscribed` and `pushlet:unsubscribed`. */
export interface TopicsData {
  readonly topics: readonly string[];
  /**
   * `pushlet:connected` only: the topics whose resume could not be continued, and why (the
   * `pushlet:reset` frames follow too). Told here, with the frame that hands out the new id, so
   * that a client that keeps that id knows of the gap even if it is cut before the next frame.
   */
  readonly reset?: ResetData;
  /**
   * `pushlet:connected` only: the server's heartbeat interval in ms (SSE comments, WebSocket
   * pings). A client may count a link silent for 2.5 times this as dead.
   */
  readonly heartbeat?: number;
}

/** The JSON text of a notice, keys in message order (`undefined` ones left out). */
export function noticeJson({ id, topic, event, data, ref }: Notice, now: number = Date.now()): string {
  return JSON.stringify({ id, topic, event, data, timestamp: isoTime(now), ref });
}

export function resetNotice(topics: readonly string[], reason: string, ref?: CommandRef): Notice {
  const data: ResetData = { topics, reason };
  return { event: EVENTS.reset, data: JSON.stringify(data), ref };
}

export function topicsNotice(
  event: 'pushlet:connected' | 'pushlet:subscribed' | 'pushlet:unsubscribed',
  topics: readonly string[],
  extra: { id?: string; topic?: string; ref?: CommandRef } = {},
  reset?: ResetData,
  heartbeat?: number,
): Notice {
  const data: TopicsData = { topics, ...(reset && { reset }), ...(heartbeat !== undefined && { heartbeat }) };
  return { event, data: JSON.stringify(data), ...extra };
}

/** A member of a presence topic: one connection's subscription of it (docs/protocol.md, "Identity, presence and client publishing"). */
export interface PresenceMember {
  /** The connection, unique per connection and instance. */
  readonly clientId: string;
  /** The connection's identity (what `authenticate` returned), `null` for anonymous connections. */
  readonly identity: PushletIdentity | null;
  readonly transport: PushletTransport;
  /** When it joined, ISO 8601 in UTC. */
  readonly since: string;
}

/** `data` of `pushlet:presence`, and what `PushletService.presence()` resolves to. */
export interface PresenceData {
  readonly count: number;
  readonly members: readonly PresenceMember[];
}

/** `data` of `pushlet:history`: a topic's messages, oldest first (the page ending just before `before`, when given). */
export interface HistoryData {
  readonly topic: string;
  readonly messages: readonly PushletMessage[];
}

/**
 * Who a connection is: what the app's `authenticate` hook returned, any JSON object with a string
 * `id` (the user). `expiresAt` (milliseconds since the epoch) ends the connection at that time
 * unless the client sends `refresh` first.
 */
export interface PushletIdentity {
  readonly id: string;
  readonly expiresAt?: number;
  readonly [key: string]: unknown;
}
