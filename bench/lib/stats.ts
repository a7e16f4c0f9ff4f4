/**
 * The bench's statistics, used everywhere. Percentiles use one rank rule, the nearest rank: the
 * p-quantile (0..1) of n samples is the smallest sample with at least ⌈p·n⌉ samples at or below it
 * (rank ⌈p·n⌉, at least 1), so p = 0.5 of [1, 2, 3, 4] is 2 and p = 1 is the maximum. The latency
 * histogram (histogram.ts) applies the same rule to its buckets.
 */
export function percentile(values: readonly number[], p: number): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length))) - 1]!;
}

/** The middle value (the mean of the two middle ones for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

export function mean(values: readonly number[]): number {
  return values.length ? sum(values) / values.length : NaN;
}

export function round(value: number, digits: number): number {
  if (!Number.isFinite(value)) return value;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Sums the numeric fields of records that share their keys (counts from several processes). */
export function sumFields<T extends object>(parts: readonly T[]): T {
  const out: Record<string, number> = {};
  for (const part of parts) for (const [key, n] of Object.entries(part)) if (typeof n === 'number') out[key] = (out[key] ?? 0) + n;
  return out as T;
}
