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

/** Something the broker in use cannot do (history without `PushletBroker.tail`). Answered 501 on HTTP, `pushlet:error` on WebSocket. */
export class PushletUnsupportedError extends PushletError {}

/** A connection refused by a limit. Answered 503 on HTTP, close 1013 on WebSocket. */
export class PushletLimitError extends PushletError {
  constructor(
    message: string,
    /** What `stats().refused` counts it under. */
    readonly reason: PushletLimitReason = 'limit',
  ) {
    super(message);
  }
}

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

/**
 * A connection turned away by a limit or by the shutdown, with the reason it is counted under;
 * thrown by {@link PushletLimitError}'s subclasses.
 */
export type PushletLimitReason = 'limit' | 'address_limit' | 'user_limit' | 'shutdown';

/** A connection that arrived once the app began shutting down (503 with `Connection: close`, close 1001). */
export class PushletShuttingDownError extends PushletLimitError {}

/** A refusal by a guard of the built-in endpoints: the HTTP status and body to answer before any stream or upgrade. */
export class PushletRouteRefusal extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(typeof body.message === 'string' ? body.message : 'refused');
  }
}

/**
 * The HTTP status each of the module's errors is answered with (the error filter, the SSE route,
 * WebSocket upgrades and `stream()`); `undefined` for an error that is not the module's own.
 */
export function httpStatusOf(error: unknown): number | undefined {
  if (error instanceof PushletRouteRefusal) return error.status;
  if (error instanceof PushletUnavailableError) return 503;
  if (!(error instanceof PushletError)) return undefined;
  if (error instanceof PushletUnauthorizedError) return 401;
  if (error instanceof PushletForbiddenError) return 403;
  if (error instanceof PushletLimitError) return 503;
  if (error instanceof PushletUnsupportedError) return 501;
  return 400;
}
