import { Counter, Gauge, Histogram, type OpenMetricsContentType, type PrometheusContentType, type Registry } from 'prom-client';
import type { PushletStats } from '../interfaces/stats.interface.js';
import type { PushletObserver } from './pushlet-counters.js';
import { MESSAGES } from '../pushlet.messages.js';

/** A prom-client registry of either exposition format. */
export type PushletMetricsRegistry = Registry<PrometheusContentType> | Registry<OpenMetricsContentType>;

/** What the metrics read: an app's `PushletService` (its `stats()` and `observe()`). */
export interface PushletMetricsSource {
  stats(): PushletStats;
  observe(observer: PushletObserver): () => void;
}

/** Histogram buckets, in seconds. */
export interface PushletMetricsBuckets {
  /** `pushlet_publish_duration_seconds`: a publish call to the broker's acknowledgement. */
  publishDuration?: readonly number[];
  /** `pushlet_broker_lag_seconds`: a message's timestamp to its delivery here. */
  brokerLag?: readonly number[];
}

/** From 0.1 ms (in memory) through Redis round trips to a Redis outage (publications wait). */
export const DEFAULT_PUBLISH_DURATION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;
/** Timestamps have millisecond resolution: from 1 ms (same process) to a recovery after an outage. */
export const DEFAULT_BROKER_LAG_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

/**
 * One metric family that is read from `stats()` on scrape: its values by label value (`''` for a
 * family without labels), summed over the apps that share a registry (`min` for up/down gauges).
 */
interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: 'gauge' | 'counter';
  readonly label?: string;
  readonly combine?: 'min';
  read(stats: PushletStats): Record<string, number>;
}

const FAMILIES: readonly Family[] = [
  {
    name: 'pushlet_connections',
    help: 'Open connections (built-in SSE and WebSocket endpoints, and stream() routes given their request).',
    type: 'gauge',
    label: 'transport',
    read: ({ connections }) => ({ sse: connections.sse, ws: connections.ws }),
  },
  {
    name: 'pushlet_subscriptions',
    help: 'Topic subscriptions on this instance (a connection on three topics counts three; broadcasts not counted).',
    type: 'gauge',
    read: (s) => ({ '': s.subscriptions }),
  },
  { name: 'pushlet_topics', help: 'Topics with at least one subscriber on this instance.', type: 'gauge', read: (s) => ({ '': s.topics }) },
  {
    name: 'pushlet_messages_published_total',
    help: 'Messages published through this instance and acknowledged by the broker, by origin (server: PushletService; client: a client publish command).',
    type: 'counter',
    label: 'origin',
    read: ({ publishedBy }) => ({ server: publishedBy.server, client: publishedBy.client }),
  },
  {
    name: 'pushlet_deliveries_total',
    help: 'Messages handed to connections as they were published (once per message and subscriber; replays not included).',
    type: 'counter',
    label: 'transport',
    read: ({ deliveries }) => ({ sse: deliveries.sse, ws: deliveries.ws }),
  },
  {
    name: 'pushlet_bytes_sent_total',
    help: 'Bytes of those deliveries: the message frame (SSE: as an HTTP/1.1 chunk; WebSocket: with its frame header) times its subscribers.',
    type: 'counter',
    label: 'transport',
    read: ({ bytesSent }) => ({ sse: bytesSent.sse, ws: bytesSent.ws }),
  },
  {
    name: 'pushlet_slow_consumer_disconnects_total',
    help: 'Connections cut off because their outgoing buffer passed limits.bufferBytes.',
    type: 'counter',
    label: 'transport',
    read: ({ slowConsumers }) => ({ sse: slowConsumers.sse, ws: slowConsumers.ws }),
  },
  {
    name: 'pushlet_resumes_total',
    help: 'Connections that resumed with a last event id: every missed message replayed (recovered), or told pushlet:reset (reset).',
    type: 'counter',
    label: 'result',
    read: ({ resumes }) => ({ recovered: resumes.recovered, reset: resumes.reset }),
  },
  {
    name: 'pushlet_replayed_messages_total',
    help: 'Messages replayed from history to resuming connections.',
    type: 'counter',
    read: (s) => ({ '': s.replayed }),
  },
  {
    name: 'pushlet_catch_up_reads_total',
    help: "Topics caught up as connections start or resume (broadcasts included), from this instance's recent window (window) or from the broker's history (broker).",
    type: 'counter',
    label: 'source',
    read: ({ broker }) => ({ window: broker.resumesFromWindow, broker: broker.resumesFromBroker }),
  },
  {
    name: 'pushlet_recent_window_bytes',
    help: 'Bytes held by the recent window of the watched topics (estimated; history.recentWindowBytes at most).',
    type: 'gauge',
    read: ({ broker }) => ({ '': broker.windowBytes }),
  },
  {
    name: 'pushlet_connections_refused_total',
    help: 'Connections turned away before they started, by reason (limit, address_limit, user_limit, unauthenticated, guard, forbidden, invalid, origin, shutdown, unavailable).',
    type: 'counter',
    label: 'reason',
    read: (s) => ({ ...s.refused }),
  },
  {
    name: 'pushlet_broker_up',
    help: 'Whether the broker is connected (1) or not (0): in memory always 1; with Redis, 1 while the link is ready.',
    type: 'gauge',
    combine: 'min',
    read: (s) => ({ '': s.broker.connected ? 1 : 0 }),
  },
  {
    name: 'pushlet_broker_queued',
    help: 'Publications waiting for Redis to record them (redis.maxQueued at most).',
    type: 'gauge',
    read: (s) => ({ '': s.broker.queued }),
  },
];

/** Every metric name, for dashboards and tests. */
export const PUSHLET_METRIC_NAMES = [...FAMILIES.map((family) => family.name), 'pushlet_publish_duration_seconds', 'pushlet_broker_lag_seconds'] as const;

/**
 * Observations of one histogram, kept in a small buffer and handed to prom-client together: on
 * each scrape (the histogram's `collect`), or when the buffer fills. Delivery then only stores a
 * number; prom-client's `observe` runs in a tight loop away from the delivery path.
 */
class Observations {
  private readonly values = new Float64Array(OBSERVATIONS_BUFFERED);
  private count = 0;

  constructor(readonly histogram: Histogram<string>) {}

  add(value: number): void {
    this.values[this.count++] = value;
    if (this.count === OBSERVATIONS_BUFFERED) this.flush();
  }

  flush(): void {
    const { histogram, values, count } = this;
    this.count = 0;
    for (let i = 0; i < count; i++) histogram.observe(values[i]!);
  }
}
const OBSERVATIONS_BUFFERED = 512;

/** The metric by which a registry's set is found: the set hangs on it. */
class AnchorGauge extends Gauge<string> {
  owner!: PushletMetricSet;
}

/**
 * The module's metrics on one registry. Every metric is registered once per registry: apps of one
 * process that register on the same registry (prom-client's global one, by default) share the
 * set, and each figure is the sum over them. Gauges and counters are read from each app's
 * `stats()` when the registry is scraped (`collect`), so that nothing is counted twice and
 * nothing costs anything per delivery; the two histograms take one value per message, into a
 * buffer handed to prom-client on scrape.
 */
export class PushletMetricSet implements PushletObserver {
  private readonly sources = new Map<PushletMetricsSource, () => void>();
  /** What the apps that left counted, kept so that counters never go back while others remain. */
  private readonly retired = new Map<string, Record<string, number>>();
  private readonly publishDuration: Observations;
  private readonly brokerLag: Observations;
  private snapshot: PushletStats[] | undefined;

  private constructor(
    private readonly registry: PushletMetricsRegistry,
    buckets: PushletMetricsBuckets,
  ) {
    for (const family of FAMILIES) this.create(family);
    this.publishDuration = this.histogram(
      'pushlet_publish_duration_seconds',
      'Time from a publish call on this instance to the broker acknowledging it (Redis: recorded; waits through outages).',
      buckets.publishDuration ?? DEFAULT_PUBLISH_DURATION_BUCKETS,
    );
    this.brokerLag = this.histogram(
      'pushlet_broker_lag_seconds',
      'Time from a message timestamp (its publication, on any instance) to its delivery to subscribers on this instance.',
      buckets.brokerLag ?? DEFAULT_BROKER_LAG_BUCKETS,
    );
  }

  /**
   * The set on `registry`, created (and registered) on first use. The buckets of the first call
   * win; later ones share its histograms.
   * @throws Error when a metric of the same name that is not Pushlet's is registered there.
   */
  static on(registry: PushletMetricsRegistry, buckets: PushletMetricsBuckets = {}): PushletMetricSet {
    const anchor = registry.getSingleMetric(FAMILIES[0]!.name);
    if (anchor instanceof AnchorGauge) return anchor.owner;
    const taken = PUSHLET_METRIC_NAMES.find((name) => registry.getSingleMetric(name) !== undefined);
    if (taken) throw new Error(MESSAGES.metricNameTaken(taken));
    return new PushletMetricSet(registry, buckets);
  }

  /** Adds an app; adding one twice adds it once. */
  add(source: PushletMetricsSource): void {
    if (this.sources.has(source)) return;
    this.sources.set(source, source.observe(this));
  }

  /** Removes an app. The last one to leave unregisters every metric. */
  remove(source: PushletMetricsSource): void {
    const stopObserving = this.sources.get(source);
    if (!stopObserving) return;
    stopObserving();
    this.retire(source.stats());
    this.sources.delete(source);
    if (this.sources.size > 0) return;
    for (const name of PUSHLET_METRIC_NAMES) this.registry.removeSingleMetric(name);
  }

  published(seconds: number): void {
    this.publishDuration.add(seconds);
  }

  delivered(seconds: number): void {
    this.brokerLag.add(seconds);
  }

  private histogram(name: string, help: string, buckets: readonly number[]): Observations {
    // `collect` runs on scrape, once `observations` exists.
    const histogram: Histogram = new Histogram({ name, help, buckets: [...buckets], registers: [this.registry], collect: (): void => observations.flush() });
    const observations: Observations = new Observations(histogram);
    return observations;
  }

  private create(family: Family): Gauge<string> | Counter<string> {
    // prom-client calls `collect` with the metric as `this`: the set is reached through this alias.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const set = this;
    const config = {
      name: family.name,
      help: family.help,
      labelNames: family.label ? [family.label] : [],
      registers: [this.registry],
      collect(this: Gauge<string> | Counter<string>) {
        set.fill(this, family);
      },
    };
    if (family.type === 'counter') return new Counter(config);
    if (family !== FAMILIES[0]) return new Gauge(config);
    const anchor = new AnchorGauge(config);
    anchor.owner = this;
    return anchor;
  }

  /** Writes a family's current values into its metric (called by prom-client on scrape). */
  private fill(metric: Gauge<string> | Counter<string>, family: Family): void {
    const values = this.combined(family);
    metric.reset();
    for (const [labelValue, value] of Object.entries(values)) {
      const labels = family.label ? { [family.label]: labelValue } : {};
      if (metric instanceof Counter) metric.inc(labels, value);
      else metric.set(labels, value);
    }
  }

  private combined(family: Family): Record<string, number> {
    const values: Record<string, number> = { ...(this.retired.get(family.name) ?? {}) };
    for (const stats of this.snapshots()) {
      for (const [labelValue, value] of Object.entries(family.read(stats))) {
        const before = values[labelValue];
        values[labelValue] = before === undefined ? value : family.combine === 'min' ? Math.min(before, value) : before + value;
      }
    }
    return values;
  }

  /**
   * Each app's `stats()`, taken once per scrape: prom-client collects every metric of a scrape in
   * one synchronous pass, so the snapshot is dropped once that pass is over.
   */
  private snapshots(): PushletStats[] {
    if (!this.snapshot) {
      this.snapshot = [...this.sources.keys()].map((source) => source.stats());
      queueMicrotask(() => (this.snapshot = undefined));
    }
    return this.snapshot;
  }

  private retire(stats: PushletStats): void {
    for (const family of FAMILIES) {
      if (family.type !== 'counter') continue;
      const kept = this.retired.get(family.name) ?? {};
      for (const [labelValue, value] of Object.entries(family.read(stats))) kept[labelValue] = (kept[labelValue] ?? 0) + value;
      this.retired.set(family.name, kept);
    }
  }
}
