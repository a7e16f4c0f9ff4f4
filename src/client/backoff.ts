/**
 * Jittered exponential backoff: attempt `n` (from 0) waits `minMs` plus a uniformly random part
 * of `minMs * 2^n`, at most `maxMs` in all; so that clients dropped together do not come back
 * together, from the first attempt on (it waits between `minMs` and twice that).
 */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const spread = minMs * 2 ** Math.min(attempt, 30);
  return Math.round(Math.min(maxMs, minMs + random() * spread));
}
