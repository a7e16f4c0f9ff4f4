import type { PushletTransport } from '../protocol/frames.js';
import type { Envelope } from './envelope.js';

/**
 * What core counts as it happens, as an interface core owns: `metrics/pushlet-counters.ts`
 * implements it, and nothing in core imports the metrics.
 */

/** Why a connection was turned away before it started (the `reason` of `pushlet_connections_refused_total`). */
export const PUSHLET_REFUSAL_REASONS = [
  /** `limits.maxConnections` reached (503, close 1013). */
  'limit',
  /** `limits.maxConnectionsPerAddress` reached (503, close 1013). */
  'address_limit',
  /** `limits.maxConnectionsPerUser` reached (503, close 1013). */
  'user_limit',
  /** `authenticate` said no, threw, or returned an expired identity (401, before any stream or upgrade). */
  'unauthenticated',
  /** A global guard or `routes.guards` said no (403 or the guard's status). */
  'guard',
  /** `authorize` refused a topic of an SSE request or `stream()` (403). */
  'forbidden',
  /** A bad topic list or `format` on an SSE request or `stream()` (400). */
  'invalid',
  /** A WebSocket upgrade from an `Origin` not in `ws.allowedOrigins` (403). */
  'origin',
  /** A connection that arrived during shutdown (503 with `Connection: close`, close 1001). */
  'shutdown',
  /** Its start could not be placed while history is unreadable (SSE `retry:`, close 1013, 503): the client comes back. */
  'unavailable',
] as const;
export type PushletRefusalReason = (typeof PUSHLET_REFUSAL_REASONS)[number];

/**
 * How a kind of connection (a transport and its encoding) is counted: which transport, and how
 * many bytes a message's frame takes on it. Each kind is one shared object, so that a topic can
 * count its subscribers per kind and a fan-out be counted once per kind.
 */
export interface DeliveryMeter {
  readonly transport: PushletTransport;
  /** Bytes of the frame of `envelope` (the encoding shared by every connection of this kind). */
  frameBytes(envelope: Envelope): number;
}

/** How many listeners of a topic are of one kind (a topic has one entry per kind it has). */
export interface MeteredListeners {
  readonly meter: DeliveryMeter;
  count: number;
}

/** The counts core reports; `PushletCounters` (metrics) keeps them for `stats()`. */
export interface CoreCounters {
  /** One message went out to a topic's local subscribers, `kinds` holding how many of each kind. */
  fannedOut(envelope: Envelope, kinds: readonly MeteredListeners[]): void;
  /** A connection was cut off for reading too slowly. */
  slowConsumer(transport: PushletTransport): void;
  /** A resume was answered: exactly (`reset` false), or with a `pushlet:reset` for some topics. */
  resumed(reset: boolean, replayed: number): void;
  /** A connection was turned away before it started. */
  refusal(reason: PushletRefusalReason): void;
}
