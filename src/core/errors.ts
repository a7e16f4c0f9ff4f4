/** Base class of every error the module throws on purpose. */
export class PushletError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A topic, event or payload that breaks the wire contract. Answered 400 on HTTP, `pushlet:error` on WebSocket. */
export class PushletValidationError extends PushletError {}

/** A subscription the `authorize` option refused. Answered 403 on HTTP, `pushlet:error` on WebSocket. */
export class PushletForbiddenError extends PushletError {}

/**
 * A connection whose `authenticate` hook said no (or threw, or returned an identity that has
 * already expired). Answered 401 on HTTP, before any stream or upgrade; `pushlet:error` for a
 * refused `refresh`.
 */
export class PushletUnauthorizedError extends PushletError {}

/** A connection refused by a limit. Answered 503 on HTTP, close 1013 on WebSocket. */
export class PushletLimitError extends PushletError {}

/**
 * The broker cannot tell right now where a connection must start (its history or position cannot
 * be read, e.g. while Redis is unreachable). Not the client's fault and not lasting: the
 * connection is ended so that the client comes back with the same id (SSE: the stream ends;
 * WebSocket: close 1013; `stream()`: 503), rather than starting it with a reset.
 */
export class PushletUnavailableError extends Error {
  constructor(
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * The broker failed (it stopped, refused a publication, or holds too many waiting). Not a
 * `PushletError` on purpose: not the client's fault, so it must not turn into a 400; left to Nest
 * it answers 500.
 */
export class PushletBrokerError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}
