import type { CommandRef } from '../protocol/frames.js';

/**
 * A link silent for this many heartbeat intervals (the server's, from `pushlet:connected`) counts
 * as dead: SSE's idle timeout, and WebSocket's ping interval plus pong timeout (1 + 1.5).
 */
export const DEAD_LINK_FACTOR = 2.5;

/** One frame from the server, as either transport reads it. */
export interface ClientFrame {
  readonly event: string;
  readonly data: string;
  /** Messages and `pushlet:connected`: the id to resume after. */
  readonly id?: string;
  /** Messages (and some notices): the topic. */
  readonly topic?: string;
  /** Messages: the publication time. */
  readonly timestamp?: string;
  readonly ref?: CommandRef;
}

/**
 * How a transport's connection ended (never reported when the client itself closed it): refused
 * (SSE answered with an HTTP error instead of a stream: its `status`, and the server's message as
 * `reason`), dropped (`reason` says how), or ended by the server on purpose (`reason` empty:
 * WebSocket close 1000, 1001 or 1013 after it opened, or the end of an SSE stream).
 */
export interface TransportEnd {
  /** Whether the connection ever got through. */
  readonly opened: boolean;
  readonly reason: string;
  /** SSE: the HTTP status of a refused request. */
  readonly status?: number;
  /** WebSocket: the close code. */
  readonly code?: number;
  /** The wait the server asked for before the next attempt: SSE `retry:` or `Retry-After`. */
  readonly retryMs?: number;
}

export interface TransportHandlers {
  frame(frame: ClientFrame): void;
  /** Called at most once, and never after `close()`. */
  ended(end: TransportEnd): void;
}

/** What one connection attempt needs to know. */
export interface ConnectRequest {
  /** The endpoint (`baseUrl` joined with `wsPath` or `ssePath`) with one `topic` parameter per topic. */
  readonly url: URL;
  readonly topics: readonly string[];
  readonly lastEventId: string | undefined;
  readonly token: string | undefined;
}

/** One connection, over WebSocket or SSE. */
export interface Transport {
  readonly kind: 'websocket' | 'sse';
  /** The topics this connection asked for (on SSE, changing them takes a new connection). */
  readonly topics: Set<string>;
  /** WebSocket: sends a command; false when the socket is not open. SSE has no command channel. */
  send(command: Record<string, unknown>): boolean;
  /**
   * The server announced its heartbeat interval (`pushlet:connected`): the transport derives its
   * dead-link detection from it unless the options set it (docs/client.md, "Dead links").
   */
  heartbeat(ms: number): void;
  /** Ends the connection at once, leaving no timer or socket behind. No `ended` call follows. */
  close(): void;
}

/**
 * The URL of an endpoint for some topics: `path` joined to `base` without losing the base's own
 * path (`https://x/api` + `/ws`), one `topic` parameter per topic.
 */
export function endpointUrl(base: string, path: string, topics: readonly string[]): URL {
  const url = new URL(base);
  url.pathname = url.pathname.replace(/\/+$/, '') + (path.startsWith('/') ? path : `/${path}`);
  for (const topic of topics) url.searchParams.append('topic', topic);
  return url;
}
