/**
 * The bench's statistics, used everywhere. Percentiles use one rank rule, the nearest rank: the
 * p-quantile (0..1) of n samples is the smallest sample with at least ⌈p·n⌉ samples at or below it
 * (rank ⌈p·n⌉, at least 1), so p = 0.5 of [1, 2, 3, 4] is 2 and p = 1 is the maximum. The latency
 * histogram below applies the same rule to its buckets.
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

/**
 * A log-bucketed latency histogram (about 2 % wide buckets from 1 µs up), cheap enough to record
 * every delivery and small enough to send over IPC and merge across load-client processes.
 */
const GROWTH = 1.02;
const SCALE = 1 / Math.log(GROWTH);
const BUCKETS = 1400;

/** What a histogram looks like on the wire: sparse `[bucket, count]` pairs plus exact extremes. */
export interface HistogramData {
  buckets: Array<[number, number]>;
  count: number;
  sumUs: number;
  minUs: number;
  maxUs: number;
  negative: number;
}

export class Histogram {
  private counts = new Float64Array(BUCKETS);
  count = 0;
  sumUs = 0;
  minUs = Infinity;
  maxUs = 0;
  /** Samples below zero (clock trouble); recorded as 0 and counted here so they cannot hide. */
  negative = 0;

  record(us: number): void {
    if (us < 0) {
      this.negative += 1;
      us = 0;
    }
    const index = us < 1 ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log(us) * SCALE) + 1);
    this.counts[index]! += 1;
    this.count += 1;
    this.sumUs += us;
    if (us < this.minUs) this.minUs = us;
    if (us > this.maxUs) this.maxUs = us;
  }

  merge(data: HistogramData): void {
    for (const [index, count] of data.buckets) this.counts[index]! += count;
    this.count += data.count;
    this.sumUs += data.sumUs;
    this.minUs = Math.min(this.minUs, data.minUs);
    this.maxUs = Math.max(this.maxUs, data.maxUs);
    this.negative += data.negative;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.sumUs = 0;
    this.minUs = Infinity;
    this.maxUs = 0;
    this.negative = 0;
  }

  /** The p-quantile (0..1) by the nearest rank, as `percentile`: the bucket holding rank ⌈p·count⌉, its midpoint in µs. */
  percentile(p: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil(p * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i += 1) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(this.maxUs, Math.max(this.minUs, bucketMid(i)));
    }
    return this.maxUs;
  }

  toJSON(): HistogramData {
    const buckets: Array<[number, number]> = [];
    for (let i = 0; i < BUCKETS; i += 1) if (this.counts[i]! > 0) buckets.push([i, this.counts[i]!]);
    return { buckets, count: this.count, sumUs: this.sumUs, minUs: this.minUs, maxUs: this.maxUs, negative: this.negative };
  }

  summary() {
    const ms = (us: number) => round(us / 1000, 3);
    return {
      count: this.count,
      p50Ms: ms(this.percentile(0.5)),
      p90Ms: ms(this.percentile(0.9)),
      p99Ms: ms(this.percentile(0.99)),
      p999Ms: ms(this.percentile(0.999)),
      maxMs: ms(this.count ? this.maxUs : NaN),
      meanMs: ms(this.count ? this.sumUs / this.count : NaN),
    };
  }
}

function bucketMid(index: number): number {
  if (index === 0) return 0.5;
  // Bucket i (i >= 1) holds [GROWTH^(i-1), GROWTH^i).
  return Math.exp((index - 0.5) / SCALE);
}
