/**
 * Full-jitter exponential backoff: attempt `n` (from 0) waits a uniformly random time between
 * `minMs` and `min(maxMs, minMs * 2^n)`, so that clients dropped together do not come back together.
 */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.round(minMs + random() * Math.max(0, ceiling - minMs));
}
