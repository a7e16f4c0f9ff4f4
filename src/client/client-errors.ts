// One constant per text, so that a bundle keeps only the ones it uses (the core build has no
// commands). Short on purpose: every byte here is downloaded by every page (docs/client.md,
// "Core and full builds"); the error's class and fields say the rest.
export const TEXT_CLOSED = 'the client is closed';
export const TEXT_NO_WEBSOCKET = 'no WebSocket: pass options.WebSocket';
export const TEXT_BAD_BASE_URL = 'baseUrl must be an absolute http(s) URL';
export const TEXT_NO_TOPICS = 'no topic';
export const TEXT_UNSUBSCRIBED = 'unsubscribed';

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

// The subclasses' fields are `declare`d and assigned in the constructor rather than written as
// parameter properties: with ES2022 class fields, those would also be emitted as field
// declarations (a few bytes each in the bundle, for nothing).

/** The server refused a topic (`pushlet:error` on WebSocket, 400/403 on SSE); `reason` is its text. */
export class PushletSubscribeError extends PushletClientError {
  override name = 'PushletSubscribeError';
  declare readonly topic: string;
  declare readonly reason: string;

  constructor(topic: string, reason: string) {
    super(`topic "${topic}" refused: ${reason}`);
    this.topic = topic;
    this.reason = reason;
  }
}

/** The server answered a command (`publish`, `presence`, `refresh`) with `pushlet:error`; `reason` is its text. */
export class PushletCommandError extends PushletClientError {
  override name = 'PushletCommandError';
  declare readonly action: string;
  declare readonly reason: string;

  constructor(action: string, reason: string) {
    super(`the server refused ${action}: ${reason}`);
    this.action = action;
    this.reason = reason;
  }
}

/**
 * A connection attempt failed or a connection dropped; the client retries by itself, except after
 * the server disconnected it (`code` 4002).
 */
export class PushletConnectionError extends PushletClientError {
  override name = 'PushletConnectionError';
  /** HTTP status of a refused SSE request, when there was one. */
  declare readonly status?: number;
  /** WebSocket close code, when the server closed with one (4001 expired, 4002 disconnected). */
  declare readonly code?: number;

  constructor(message: string, status?: number, code?: number) {
    super(message);
    this.status = status;
    this.code = code;
  }
}
