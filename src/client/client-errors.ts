// One constant per text, so that a bundle keeps only the ones it uses (the core build has no commands).
export const TEXT_CLOSED = 'the client is closed; create a new PushletClient to connect again';
export const TEXT_NO_WEBSOCKET = 'no WebSocket constructor: pass options.WebSocket (in Node 20, `import { WebSocket } from "ws"`) or use transport "sse"';
export const TEXT_BAD_BASE_URL = 'baseUrl must be an absolute http(s) URL such as "https://example.com"';
export const TEXT_NO_TOPICS = 'subscribe needs at least one topic';
export const TEXT_UNSUBSCRIBED = 'unsubscribed before the server confirmed the subscription';

/** Texts of the client's own errors, in one place. */
export const CLIENT_TEXTS = {
  closed: TEXT_CLOSED,
  noWebSocket: TEXT_NO_WEBSOCKET,
  badBaseUrl: TEXT_BAD_BASE_URL,
  noTopics: TEXT_NO_TOPICS,
  unsubscribed: TEXT_UNSUBSCRIBED,
  notWebSocket: 'publish, presence and refresh need a connected WebSocket (transport "websocket", state "connected")',
  dropped: 'the connection ended before the server answered',
  noToken: 'refresh needs a token: pass one, or set the token option',
} as const;

/** Base class of every error the client raises. */
export class PushletClientError extends Error {
  // Named here rather than from `new.target.name`: a minifier renames classes.
  override name = 'PushletClientError';

  constructor(message: string) {
    super(message);
  }
}

/** The server refused a topic (`pushlet:error` on WebSocket, 400/403 on SSE); `reason` is its text. */
export class PushletSubscribeError extends PushletClientError {
  override name = 'PushletSubscribeError';

  constructor(
    readonly topic: string,
    readonly reason: string,
  ) {
    super(`the server refused topic "${topic}": ${reason}`);
  }
}

/** The server answered a command (`publish`, `presence`, `refresh`) with `pushlet:error`; `reason` is its text. */
export class PushletCommandError extends PushletClientError {
  override name = 'PushletCommandError';

  constructor(
    readonly action: string,
    readonly reason: string,
  ) {
    super(`the server refused ${action}: ${reason}`);
  }
}

/**
 * A connection attempt failed or a connection dropped; the client retries by itself, except after
 * the server disconnected it (`code` 4002).
 */
export class PushletConnectionError extends PushletClientError {
  override name = 'PushletConnectionError';

  constructor(
    message: string,
    /** HTTP status of a refused SSE request, when there was one. */
    readonly status?: number,
    /** WebSocket close code, when the server closed with one (4001 expired, 4002 disconnected). */
    readonly code?: number,
  ) {
    super(message);
  }
}
