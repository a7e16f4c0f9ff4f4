import type { PushletRefusalReason } from './counters.js';
import {
  PushletForbiddenError,
  PushletLimitError,
  PushletRouteRefusal,
  PushletUnauthorizedError,
  PushletUnavailableError,
  PushletValidationError,
} from './errors.js';

/**
 * What a connection turned away before it started is counted under (`stats().refused`), from the
 * error that turned it away; `undefined` for an error that is no refusal (a failure).
 */
export function refusalReasonOf(error: unknown): PushletRefusalReason | undefined {
  if (error instanceof PushletLimitError) return error.reason;
  if (error instanceof PushletUnauthorizedError) return 'unauthenticated';
  if (error instanceof PushletForbiddenError) return 'forbidden';
  if (error instanceof PushletValidationError) return 'invalid';
  if (error instanceof PushletUnavailableError) return 'unavailable';
  if (error instanceof PushletRouteRefusal) return 'guard';
  return undefined;
}
