/** Texts of the client's own errors, in one place. */
export const CLIENT_TEXTS = {
  closed: 'the client is closed; create a new PushletClient to connect again',
  noWebSocket:
    'no WebSocket constructor: pass options.WebSocket (in Node 20, `import { WebSocket } from "ws"`) or use transport "sse"',
  badBaseUrl: 'baseUrl must be an absolute http(s) URL such as "https://example.com"',
  noTopics: 'subscribe needs at least one topic',
  unsubscribed: 'unsubscribed before the server confirmed the subscription',
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
