/** Texts of the client's own errors, in one place. */
export const CLIENT_TEXTS = {
  closed: 'the client is closed; create a new PushletClient to connect again',
  noWebSocket:
    'no WebSocket constructor: pass options.WebSocket (in Node 20, `import { WebSocket } from "ws"`) or use transport "sse"',
  badBaseUrl: 'baseUrl must be an absolute http(s) URL such as "https://example.com"',
  noTopics: 'subscribe needs at least one topic',
  unsubscribed: 'unsubscribed before the server confirmed the subscription',
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

/** A connection attempt failed or a connection dropped; the client retries by itself. */
export class PushletConnectionError extends PushletClientError {
  override name = 'PushletConnectionError';

  constructor(
    message: string,
    /** HTTP status of a refused SSE request, when there was one. */
    readonly status?: number,
  ) {
    super(message);
  }
}
