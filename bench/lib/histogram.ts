import { round } from './stats.js';

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

  /** The p-quantile (0..1) by the nearest rank, as in stats.ts: the bucket holding rank ⌈p·count⌉, its midpoint in µs. */
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
