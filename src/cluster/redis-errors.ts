import { PushletBrokerError } from '../core/errors.js';
import { MESSAGES } from '../pushlet.messages.js';

/** Errors of the Redis broker (see {@link PushletBrokerError}: not the client's fault). */
export class PushletRedisError extends PushletBrokerError {}

/** Redis could not be reached at start-up (and `redis.startWithoutRedis` is not set). */
export class PushletRedisUnavailableError extends PushletRedisError {}

/** A Redis command that did not answer in time: its outcome is unknown. */
export class RedisTimeoutError extends PushletRedisError {}

/** Rejects with a {@link RedisTimeoutError} if `promise` does not settle within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new RedisTimeoutError(MESSAGES.redisTimeout(what, ms))), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// Replies that mean "not now" rather than "never": the server is loading, failing over, busy.
const TRANSIENT_REPLY = /^(LOADING|READONLY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|BUSY|NOREPLICAS|MOVED|ASK)\b/;

/**
 * True when a command failed because Redis was unreachable or not ready (its outcome may be
 * unknown), false when Redis answered with a refusal that a retry would meet again.
 */
export function isTransient(error: unknown): boolean {
  if (!(error instanceof Error)) return true;
  if (error.name !== 'ReplyError') return true;
  return TRANSIENT_REPLY.test(error.message);
}
