import { once, type EventEmitter } from 'node:events';

/** Rejects with a clear message if `promise` does not settle within `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** `events.once` with a bound. */
export function onceWithin(emitter: EventEmitter, event: string, ms: number): Promise<unknown[]> {
  return within(once(emitter, event), ms, `"${event}"`);
}

/**
 * Polls `check` until it returns true, for state that emits no event (counters, registries).
 * Bounded: rejects after `ms`.
 */
export async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting until ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * Polls an asynchronous `check` (a Redis query, say) until it resolves true. Bounded: rejects
 * after `ms`. For state that can only be asked for, never awaited as an event.
 */
export async function eventually(check: () => Promise<boolean>, ms: number, what: string, everyMs = 50): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
